// `headtune/weights`: the EfficientNet-Lite0 weights file the package ships. Bundlers that
// treat it as an asset (Vite `?url`, webpack `asset/resource`) give its URL, to pass as
// `modelUrl` or to cache ahead of time.
declare const weightsUrl: string;
export default weightsUrl;
