//! The wasm boundary: the only `#[wasm_bindgen]` code of headtune.
//!
//! One [`Engine`] holds a loaded backbone, the embedding store and the last trained model. It is
//! driven by the JS wrapper's Web Worker (`www/lib/worker.js`), which serialises calls, so an
//! engine never runs two operations at once. Everything here is thin glue: argument conversion,
//! choosing the device, and one policy of its own — when the WebGPU backend fails mid-work, the
//! engine reloads the backbone on the CPU backend, redoes the failed step there and carries on,
//! keeping every embedding already in the store.
//!
//! Rust errors become real JS `Error`s carrying the message of [`Error`], a `code` property
//! naming its variant (e.g. `"ModelFile"`, `"Cancelled"`) and, for damaged images, a `detail`
//! property with the decoder's own message.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::Device;
use js_sys::{Function, Promise, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::backbone::{Backbone, BackboneKind};
use crate::error::{Error, Result};
use crate::features::{FeatureSpec, Pooling};
use crate::predict::{predict_image, Classifier};
use crate::preprocess::{self, Crop};
use crate::parts::{Parts, ProjectRef, Tracker};
use crate::project::{self, Model, Project};
use crate::store::{embed_views_seen, fingerprint, AugmentConfig, Store};
use crate::thumbnail::{Preview, ThumbnailSizes, Thumbnails};
use crate::train::{train_pausing, EpochStats, TrainConfig};

// The module's static constructors (dependencies register things with `inventory`-style
// life-before-main), synthesised by the wasm linker.
extern "C" {
    fn __wasm_call_ctors();
}

#[wasm_bindgen(start)]
pub fn start() {
    // Run the constructors once, here. When no exported function calls `__wasm_call_ctors`, the
    // wasm linker treats the module as a "command" and wraps *every* export in a call to it:
    // that cost 0.3 ms of CPU per call across the boundary (even `version()`), on every worker
    // message, every appended view, every result. Calling it from the start function (run once
    // per instance by wasm-bindgen's init) makes the module a reactor.
    // SAFETY: the linker-made function takes nothing and is run once, before any other export.
    unsafe { __wasm_call_ctors() };
    // Panics (bugs, not user errors) then show their message in the console instead of
    // "unreachable executed".
    console_error_panic_hook::set_once();
}

/// The version of the crate, so the page can show which engine it runs.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// A JS `Error` with the message of `e` and `code` = its variant name.
fn to_js(e: Error) -> JsValue {
    // The variant name is the start of the Debug form (`Corrupt("…")`, `TooLarge { … }`), so new
    // variants get a code without touching this file.
    let debug = format!("{e:?}");
    let code: String = debug.chars().take_while(char::is_ascii_alphanumeric).collect();
    let err = js_sys::Error::new(&e.to_string());
    // Setting a property on a fresh Error object cannot fail; if it somehow did, the message
    // alone is still a correct error.
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    // The decoder's own words stay available to developers without reaching the page's text.
    if let Some(detail) = e.detail() {
        let _ = Reflect::set(&err, &"detail".into(), &detail.into());
    }
    err.into()
}

/// Serialise a result as plain JS data (objects, arrays, numbers, `null` for `None` and for
/// non-finite numbers, as in a saved project's JSON). It crosses as one JSON string parsed by
/// the browser: serde_wasm_bindgen builds the value one boundary call per field, which — while
/// every export re-ran the module's constructors (see [`start`]) — cost ~0.5 ms per value and made
/// a 2,000-row training report cost seconds on every worker reply; one string is one crossing.
fn to_value<T: Serialize>(v: &T) -> Result<JsValue> {
    let json = serde_json::to_string(v).map_err(|e| Error::Backend(format!("cannot convert the result to JS: {e}")))?;
    js_sys::JSON::parse(&json).map_err(|_| Error::Backend("cannot convert the result to JS: the browser refused its JSON".into()))
}

/// Free-form JS data (an app's `extra`) as JSON, stringified by the browser in one call (see
/// [`to_value`] for why not field by field). `undefined` inside objects is dropped, as JSON does.
fn json_from_js(v: &JsValue, what: &str) -> Result<serde_json::Value> {
    if v.is_undefined() || v.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let text = js_sys::JSON::stringify(v)
        .map_err(|e| Error::InvalidArgument(format!("{what} must be JSON data (objects, arrays, strings, numbers, booleans, null): {}", describe_js_error(&e))))?;
    let text = text.as_string().unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

/// The message of a JS exception (e.g. `JSON.stringify` refusing a BigInt or a cycle).
fn describe_js_error(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()))
}

/// Parse JS data into `T`, reporting serde's message (which lists the expected field names).
fn from_value<T: serde::de::DeserializeOwned>(v: JsValue, what: &str) -> Result<T> {
    if v.is_undefined() || v.is_null() {
        return from_value(js_sys::Object::new().into(), what);
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

/// How a result crosses to JS. Float vectors become `Float32Array`s in one copy rather than
/// element by element through serde (one boundary call per value).
trait IntoJs {
    fn into_js(self) -> Result<JsValue>;
}

macro_rules! into_js_via_serde {
    ($($t:ty),*) => {$(
        impl IntoJs for $t {
            fn into_js(self) -> Result<JsValue> {
                to_value(&self)
            }
        }
    )*};
}
into_js_via_serde!(f64, usize, crate::train::TrainReport);

impl IntoJs for Vec<f32> {
    fn into_js(self) -> Result<JsValue> {
        Ok(js_sys::Float32Array::from(self.as_slice()).into())
    }
}

impl IntoJs for crate::predict::PredictOutput {
    fn into_js(self) -> Result<JsValue> {
        let data = self.heatmap.as_ref().map(|h| js_sys::Float32Array::from(h.data.as_slice()));
        let mut plain = self;
        if let Some(h) = plain.heatmap.as_mut() {
            h.data = Vec::new();
        }
        let value = to_value(&plain)?;
        if let Some(data) = data {
            let heatmap = Reflect::get(&value, &"heatmap".into()).map_err(|_| Error::Backend("heatmap missing".into()))?;
            Reflect::set(&heatmap, &"data".into(), &data).map_err(|_| Error::Backend("cannot set heatmap data".into()))?;
        }
        Ok(value)
    }
}

/// What an added or embedded image gives back: its example `id` (`addImage`) or its `views`
/// (`embedViews`), with the JPEG `thumb` and `preview` when they were asked for — as
/// `Uint8Array`s the worker transfers, made from the decode the engine did anyway.
struct Made {
    id: Option<f64>,
    views: Option<Vec<f32>>,
    thumbnails: Option<Thumbnails>,
}

/// Set `out[key] = value` on a result object being built; `what` names the result if that fails.
fn set_field(out: &js_sys::Object, key: &str, value: &JsValue, what: &str) -> Result<()> {
    Reflect::set(out, &key.into(), value).map(|_| ()).map_err(|_| Error::Backend(format!("cannot build {what}")))
}

impl IntoJs for Made {
    fn into_js(self) -> Result<JsValue> {
        let out = js_sys::Object::new();
        let set = |key: &str, value: JsValue| set_field(&out, key, &value, "the added image's result");
        if let Some(id) = self.id {
            set("id", id.into())?;
        }
        if let Some(views) = self.views {
            set("views", js_sys::Float32Array::from(views.as_slice()).into())?;
        }
        if let Some(t) = self.thumbnails {
            set("thumb", js_sys::Uint8Array::from(t.thumb.as_slice()).into())?;
            set("preview", js_sys::Uint8Array::from(t.preview.as_slice()).into())?;
        }
        Ok(out.into())
    }
}

/// The thumbnails asked for by a call's `thumb` and `preview` sides: none when both are 0; a
/// `preview` of 0 with a thumbnail asks for the network's input as the preview
/// ([`Preview::Input`]). (Two numbers, not an options object: nothing to convert field by field
/// on every image.)
fn thumbnail_sizes(thumb: u32, preview: u32) -> Result<Option<ThumbnailSizes>> {
    if thumb == 0 && preview == 0 {
        return Ok(None);
    }
    let sizes = ThumbnailSizes { thumb, preview: if preview == 0 { Preview::Input } else { Preview::Image(preview) } };
    sizes.validate()?;
    Ok(Some(sizes))
}

/// Embed every view of `img` under `plan`, and make its thumbnails if `sizes` asks for them
/// (from the image and the evaluation view's input pixels the embedding made anyway).
async fn embed_with_thumbnails(backbone: &Backbone, plan: &ViewPlan, img: &crate::image::Rgb, seed: u64, sizes: Option<ThumbnailSizes>) -> Result<(Vec<Vec<f32>>, Option<Thumbnails>)> {
    let (views, seen) = embed_views_seen(backbone, &plan.spec, img, &plan.augment, seed).await?;
    Ok((views, sizes.map(|s| s.make(img, Some(&seen))).transpose()?))
}

thread_local! {
    /// burn registers one wgpu runtime per page/worker and refuses a second initialisation, so
    /// the device is created once and shared by every engine in this worker.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The browser's WebGPU device as a burn device, initialised on first use.
async fn webgpu_device() -> Result<Device> {
    if let Some(d) = WEBGPU.with(|g| g.borrow().clone()) {
        return Ok(d);
    }
    let device = Device::wgpu_options()
        .graphics_api(WgpuBackend::WebGpu)
        .init_async()
        .await
        .map_err(|e| Error::Backend(format!("WebGPU is not available: {e}")))?;
    WEBGPU.with(|g| *g.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// Which compute backend an engine runs the backbone on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "webgpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(Error::InvalidArgument(format!("backend is {other:?}; use \"webgpu\" or \"cpu\""))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

/// Everything an engine holds. Behind `Rc<RefCell<_>>` so the futures handed to JS can own it;
/// borrows are never held across an `await`.
struct State {
    /// Kept so the backbone can be reloaded on the CPU if WebGPU fails (5 MB).
    weights: Vec<u8>,
    backbone: Rc<Backbone>,
    backend: Backend,
    /// Why the engine switched to the CPU mid-work, if it did.
    fallback: Option<String>,
    /// Test hook: the next backbone call on WebGPU fails as if the device were lost.
    fail_next_gpu_call: bool,
    store: Store,
    augment: AugmentConfig,
    training: Option<TrainConfig>,
    model: Option<Model>,
    extra: serde_json::Value,
    /// What the caller's storage holds of this project (see `saveParts`).
    parts: Tracker,
}

impl State {
    fn switch_to_cpu(&mut self, why: &str) -> Result<()> {
        self.backbone = Rc::new(Backbone::load(&self.weights, Device::flex())?);
        self.backend = Backend::Cpu;
        self.fallback = Some(format!("WebGPU failed during work ({why}); continued on the CPU backend"));
        Ok(())
    }
}

/// Run `f` with the current backbone; if it fails on WebGPU with a backend error, switch the
/// engine to the CPU backend and run it once more there.
async fn with_backbone<T, F, Fut>(state: &Rc<RefCell<State>>, f: F) -> Result<T>
where
    F: Fn(Rc<Backbone>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let (backbone, on_gpu, simulate) = {
        let mut s = state.borrow_mut();
        let simulate = s.backend == Backend::WebGpu && std::mem::take(&mut s.fail_next_gpu_call);
        (s.backbone.clone(), s.backend == Backend::WebGpu, simulate)
    };
    let first = if simulate { Err(Error::Backend("simulated device loss".into())) } else { f(backbone).await };
    match first {
        Err(Error::Backend(why)) if on_gpu => {
            state.borrow_mut().switch_to_cpu(&why)?;
            let backbone = state.borrow().backbone.clone();
            f(backbone).await
        }
        other => other,
    }
}

/// An image as it arrives from JS: the bytes of a file, or straight RGBA pixels from a canvas.
fn decode_input(bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>) -> Result<crate::image::Rgb> {
    match (bytes, rgba) {
        (Some(b), _) => crate::image::decode(&b),
        (None, Some(px)) => crate::image::from_rgba(width, height, px),
        (None, None) => Err(Error::InvalidArgument("no image data given".into())),
    }
}

/// The feature options of `Tuner.create` (JS names); absent fields take the defaults.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeatureOptions {
    backbone: Option<String>,
    input_size: Option<usize>,
    crop: Option<Crop>,
    pooling: Option<Pooling>,
}

impl FeatureOptions {
    /// The spec these options ask for on the loaded `backbone`.
    fn spec(&self, backbone: &Backbone) -> Result<FeatureSpec> {
        let loaded = BackboneKind::parse(&backbone.arch().id)?;
        if let Some(asked) = &self.backbone {
            let asked = BackboneKind::parse(asked)?;
            if asked != loaded {
                return Err(Error::InvalidArgument(format!(
                    "backbone is \"{asked}\" but the weights loaded are {loaded}'s: give the URL of {} as modelUrl",
                    asked.weights_file()
                )));
            }
        }
        let default = FeatureSpec::default();
        FeatureSpec::new(loaded, self.input_size, self.crop.unwrap_or(default.crop()), self.pooling.unwrap_or(default.pooling()))
    }
}

/// The feature spec as JS sees it: `{ backbone: 'lite0', inputSize, crop, pooling, dim }`.
fn spec_to_js(spec: &FeatureSpec) -> Result<JsValue> {
    to_value(&serde_json::json!({
        "backbone": spec.backbone().name(),
        "inputSize": spec.input_size(),
        "crop": spec.crop(),
        "pooling": spec.pooling(),
        "dim": spec.dim(),
    }))
}

/// What a model or project file was made with, read without loading anything:
/// `{ kind: 'model' | 'project', backbone, inputSize, crop, pooling, dim }`. The worker uses it
/// to fetch the right backbone weights before `loadProject` / `loadModel`.
#[wasm_bindgen(js_name = fileFeatures)]
pub fn file_features(bytes: Vec<u8>) -> Result<JsValue, JsValue> {
    let (is_project, spec) = project::file_features(&bytes).map_err(to_js)?;
    let value = spec_to_js(&spec).map_err(to_js)?;
    Reflect::set(&value, &"kind".into(), &(if is_project { "project" } else { "model" }).into())
        .map_err(|_| to_js(Error::Backend("cannot set kind".into())))?;
    Ok(value)
}

/// The headtune engine of one worker: a backbone on one backend, the embedding store and the
/// last trained model.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<RefCell<State>>,
}

impl Engine {
    /// Load the backbone, then decide the features with `spec_of` (which may refuse the
    /// weights).
    async fn new(weights: Vec<u8>, backend: &str, spec_of: impl FnOnce(&Backbone) -> Result<FeatureSpec>) -> Result<Self> {
        let backend = Backend::parse(backend)?;
        let device = match backend {
            Backend::WebGpu => webgpu_device().await?,
            Backend::Cpu => Device::flex(),
        };
        let backbone = Backbone::load(&weights, device)?;
        let spec = spec_of(&backbone)?;
        spec.check_backbone(&backbone)?;
        Ok(Self {
            state: Rc::new(RefCell::new(State {
                weights,
                backbone: Rc::new(backbone),
                backend,
                fallback: None,
                fail_next_gpu_call: false,
                store: Store::new(spec),
                augment: AugmentConfig::default(),
                training: None,
                model: None,
                extra: serde_json::Value::Null,
                parts: Tracker::default(),
            })),
        })
    }

    /// An engine holding a loaded `project` (with its features), whose storage holds what
    /// `parts` says.
    async fn holding(weights: Vec<u8>, backend: &str, project: Project, parts: Tracker) -> Result<Self> {
        let spec = *project.store.spec();
        let engine = Self::new(weights, backend, |_| Ok(spec)).await?;
        {
            let mut s = engine.state.borrow_mut();
            s.store = project.store;
            s.augment = project.augment;
            s.training = project.training;
            s.model = project.model;
            s.extra = project.extra;
            s.parts = parts;
        }
        Ok(engine)
    }

    fn promise<T, Fut>(&self, f: impl FnOnce(Rc<RefCell<State>>) -> Fut) -> Promise
    where
        T: IntoJs,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let fut = f(self.state.clone());
        future_to_promise(async move { fut.await.and_then(IntoJs::into_js).map_err(to_js) })
    }
}

#[wasm_bindgen]
impl Engine {
    /// Load the backbone from `weights` (the bytes of e.g. `efficientnet_lite0.safetensors`) on
    /// `backend` (`"webgpu"` or `"cpu"`). `options` (`{ backbone, inputSize, crop, pooling }`,
    /// each optional) fix how embeddings are made for this project; `backbone`, if given, must
    /// name the weights' network.
    #[wasm_bindgen(js_name = create)]
    pub async fn create(weights: Vec<u8>, backend: String, options: JsValue) -> Result<Engine, JsValue> {
        let options: FeatureOptions = from_value(options, "feature options").map_err(to_js)?;
        Self::new(weights, &backend, |bb| options.spec(bb)).await.map_err(to_js)
    }

    /// An engine restored from a project file (classes, embeddings, settings, model), with the
    /// project's features. The file is checked before the backbone is loaded, so a bad file
    /// fails fast; weights of another backbone than the project's are refused.
    #[wasm_bindgen(js_name = loadProject)]
    pub async fn load_project(weights: Vec<u8>, backend: String, project: Vec<u8>) -> Result<Engine, JsValue> {
        let project = Project::from_bytes(&project).map_err(to_js)?;
        Self::holding(weights, &backend, project, Tracker::default()).await.map_err(to_js)
    }

    /// An engine restored from a project stored as parts (an object of `saveParts`' records by
    /// key, e.g. read back from IndexedDB), checked as `loadProject` checks a file. Its
    /// `savedGeneration` says these parts are stored, so its next `saveParts` writes only changes.
    #[wasm_bindgen(js_name = loadParts)]
    pub async fn load_parts(weights: Vec<u8>, backend: String, parts: JsValue) -> Result<Engine, JsValue> {
        let parts = parts_from_js(&parts).map_err(to_js)?;
        let (project, tracker) = Tracker::load(&parts).map_err(to_js)?;
        drop(parts);
        Self::holding(weights, &backend, project, tracker).await.map_err(to_js)
    }

    /// The generation of the parts this engine was loaded from (`loadParts`), else `null`: pass
    /// it as `since` to the first `saveParts`.
    #[wasm_bindgen(getter, js_name = savedGeneration)]
    pub fn saved_generation(&self) -> Option<f64> {
        let g = self.state.borrow().parts.generation();
        (g > 0).then_some(g as f64)
    }

    /// An inference-only engine for a model file (as written by `exportModel` or the CLI), with
    /// the model's features; weights of another backbone are refused.
    #[wasm_bindgen(js_name = loadModel)]
    pub async fn load_model(weights: Vec<u8>, backend: String, model: Vec<u8>) -> Result<Engine, JsValue> {
        let model = Model::from_bytes(&model).map_err(to_js)?;
        let spec = model.classifier.spec;
        let engine = Self::new(weights, &backend, |_| Ok(spec)).await.map_err(to_js)?;
        engine.state.borrow_mut().model = Some(model);
        Ok(engine)
    }

    /// `"webgpu"` or `"cpu"`: the backend the backbone runs on now.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.state.borrow().backend.name().into()
    }

    /// How embeddings are made: `{ backbone, inputSize, crop, pooling, dim }`.
    #[wasm_bindgen(getter)]
    pub fn features(&self) -> Result<JsValue, JsValue> {
        spec_to_js(self.state.borrow().store.spec()).map_err(to_js)
    }

    /// Why the engine left WebGPU mid-work, or `undefined`.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.state.borrow().fallback.clone()
    }

    /// Test hook: make the next backbone call on WebGPU fail as a lost device would.
    #[wasm_bindgen(js_name = simulateBackendFailure)]
    pub fn simulate_backend_failure(&self) {
        self.state.borrow_mut().fail_next_gpu_call = true;
    }

    /// Test hook: panic inside the engine, as a bug would. The wasm instance is unusable
    /// afterwards (a panic aborts); the worker answers `EngineCrashed` and the package closes
    /// the instance, so tests can check that callers recover (tests/browser, tests/e2e).
    #[wasm_bindgen(js_name = simulatePanic)]
    pub fn simulate_panic(&self) {
        panic!("simulated engine panic (test hook)");
    }

    /// Set how augmented views are drawn for images added from now on.
    #[wasm_bindgen(js_name = setAugment)]
    pub fn set_augment(&self, augment: JsValue) -> Result<(), JsValue> {
        let augment: AugmentConfig = from_value(augment, "augment").map_err(to_js)?;
        augment.validate().map_err(to_js)?;
        self.state.borrow_mut().augment = augment;
        Ok(())
    }

    /// The augmentation settings in use, as a plain object.
    #[wasm_bindgen(getter)]
    pub fn augment(&self) -> Result<JsValue, JsValue> {
        to_value(&self.state.borrow().augment).map_err(to_js)
    }

    /// Decode an image (file bytes, or `width × height` RGBA pixels), embed its evaluation view
    /// and augmented views and add it to class `label`. Resolves to `{ id }` (the new example's
    /// id), with `thumb` and `preview` JPEG bytes when `thumb`/`preview` sides are given (0, 0:
    /// none; see [`ThumbnailSizes`]).
    #[wasm_bindgen(js_name = addImage)]
    #[allow(clippy::too_many_arguments)]
    pub fn add_image(&self, label: String, name: String, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>, thumb: u32, preview: u32) -> Promise {
        self.promise(move |state| async move {
            let sizes = thumbnail_sizes(thumb, preview)?;
            let seed = view_seed(bytes.as_deref(), rgba.as_deref());
            let img = decode_input(bytes, width, height, rgba)?;
            let plan = {
                let mut s = state.borrow_mut();
                // An `auto` crop is decided by the first image of an empty store, for all of them:
                // one dataset, one framing (`features` then tells which).
                if s.store.is_empty() {
                    let (resolved, _, _) = s.store.spec().resolve_auto([&img]);
                    s.store.respec(resolved)?;
                }
                ViewPlan { spec: *s.store.spec(), augment: s.augment.clone() }
            };
            let (img, plan) = (&img, &plan);
            let (views, thumbnails) = with_backbone(&state, |bb| async move { embed_with_thumbnails(&bb, plan, img, seed, sizes).await }).await?;
            let id = state.borrow_mut().store.add(&label, &name, views)?;
            // Ids are < 2^53 in any store a browser can hold, so they are exact as JS numbers.
            Ok(Made { id: Some(id as f64), views: None, thumbnails })
        })
    }

    /// How the next added image's views would be made, as an opaque string for
    /// [`Embedder::embed_views`] (other workers embed, this engine appends with
    /// [`Engine::add_views`]); `undefined` while the next image still decides the framing (an
    /// `auto` crop on an empty store): add that one with `addImage`.
    #[wasm_bindgen(getter, js_name = viewPlan)]
    pub fn view_plan(&self) -> Result<Option<String>, JsValue> {
        let s = self.state.borrow();
        if s.store.is_empty() && s.store.spec().crop() == Crop::Auto {
            return Ok(None);
        }
        ViewPlan { spec: *s.store.spec(), augment: s.augment.clone() }.to_string().map(Some).map_err(to_js)
    }

    /// What [`Embedder::embed_views`] does, on this engine's backbone: the engine's worker is
    /// one of the package's pool of embedders too.
    #[wasm_bindgen(js_name = embedViews)]
    #[allow(clippy::too_many_arguments)]
    pub fn embed_views(&self, plan: String, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>, thumb: u32, preview: u32) -> Promise {
        self.promise(move |state| async move {
            let sizes = thumbnail_sizes(thumb, preview)?;
            let (plan, seed, img) = plan_input(&plan, bytes, width, height, rgba)?;
            let (img, plan) = (&img, &plan);
            let (views, thumbnails) = with_backbone(&state, |bb| async move { embed_with_thumbnails(&bb, plan, img, seed, sizes).await }).await?;
            Ok(Made { id: None, views: Some(views.concat()), thumbnails })
        })
    }

    /// Add to class `label` an example whose views (`views`: every view's embedding, one after
    /// the other) were made under `plan` by an [`Embedder`]. Refused when `plan` is no longer
    /// this engine's (`viewPlan` changed since): the image must then be added with `addImage`.
    /// Returns the new example's id, as `addImage` would have.
    #[wasm_bindgen(js_name = addViews)]
    pub fn add_views(&self, label: String, name: String, plan: String, views: Vec<f32>) -> Result<f64, JsValue> {
        if self.view_plan()?.as_deref() != Some(plan.as_str()) {
            return Err(to_js(Error::InvalidArgument("these views were made under other settings than the project's now; add the image again".into())));
        }
        let mut s = self.state.borrow_mut();
        let dim = s.store.dim();
        if dim == 0 || views.is_empty() || views.len() % dim != 0 {
            return Err(to_js(Error::InvalidArgument(format!("{} values are not whole views of {dim}", views.len()))));
        }
        let views = views.chunks(dim).map(<[f32]>::to_vec).collect();
        let id = s.store.add(&label, &name, views).map_err(to_js)?;
        Ok(id as f64)
    }

    /// `[{ name, count }]` of every class, in index order.
    pub fn classes(&self) -> Result<JsValue, JsValue> {
        to_value(&self.state.borrow().store.classes()).map_err(to_js)
    }

    /// Every example (no embeddings) as columns: `{ ids: Float64Array, classes: Uint32Array
    /// (indices into classNames), views: Uint32Array, names: string[], classNames: string[] }`.
    /// Typed arrays cross in one copy each (and the worker transfers them); the package builds
    /// `examples()`' row objects from them on the main thread.
    #[wasm_bindgen(js_name = exampleColumns)]
    pub fn example_columns(&self) -> Result<JsValue, JsValue> {
        let s = self.state.borrow();
        let examples = s.store.examples();
        // Ids are < 2^53 in any store a browser can hold, so they are exact as JS numbers.
        let ids: Vec<f64> = examples.iter().map(|e| e.id as f64).collect();
        let classes: Vec<u32> = examples.iter().map(|e| u32::try_from(e.class).unwrap_or(u32::MAX)).collect();
        let views: Vec<u32> = examples.iter().map(|e| u32::try_from(e.views.len()).unwrap_or(u32::MAX)).collect();
        let names: Vec<&str> = examples.iter().map(|e| e.name.as_str()).collect();
        let out = js_sys::Object::new();
        let set = |key: &str, value: JsValue| set_field(&out, key, &value, "the example columns").map_err(to_js);
        set("ids", js_sys::Float64Array::from(ids.as_slice()).into())?;
        set("classes", js_sys::Uint32Array::from(classes.as_slice()).into())?;
        set("views", js_sys::Uint32Array::from(views.as_slice()).into())?;
        set("names", to_value(&names).map_err(to_js)?)?;
        set("classNames", to_value(&s.store.class_names()).map_err(to_js)?)?;
        Ok(out.into())
    }

    /// Rename a class (onto an existing name: merge the two). The trained model's labels (and
    /// so exported model files and predictions) follow a plain rename without retraining.
    #[wasm_bindgen(js_name = renameClass)]
    pub fn rename_class(&self, from: String, to: String) -> Result<(), JsValue> {
        let mut s = self.state.borrow_mut();
        let to = s.store.rename_class(&from, &to).map_err(to_js)?;
        if let Some(model) = s.model.as_mut() {
            model.rename_class(&from, &to);
        }
        Ok(())
    }

    /// Delete a class with its examples; returns how many examples went.
    #[wasm_bindgen(js_name = removeClass)]
    pub fn remove_class(&self, name: String) -> Result<usize, JsValue> {
        self.state.borrow_mut().store.remove_class(&name).map_err(to_js)
    }

    /// Delete one example by id.
    #[wasm_bindgen(js_name = removeExample)]
    pub fn remove_example(&self, id: f64) -> Result<(), JsValue> {
        let id = example_id(id).map_err(to_js)?;
        self.state.borrow_mut().store.remove(id).map(|_| ()).map_err(to_js)
    }

    /// Move one example to class `class` (created if needed), e.g. to fix a wrong label.
    #[wasm_bindgen(js_name = relabelExample)]
    pub fn relabel_example(&self, id: f64, class: String) -> Result<(), JsValue> {
        let id = example_id(id).map_err(to_js)?;
        self.state.borrow_mut().store.relabel(id, &class).map_err(to_js)
    }

    /// Train a head on the store. `config` has the fields of [`TrainConfig`] (camelCase) plus
    /// `augment`: `true`/absent = use every stored view, `false` = evaluation views only.
    /// `onEpoch(stats)` is called after every epoch; `cancelled()` is polled between batches;
    /// `pause()` returns a Promise awaited between epochs so the worker can see an abort.
    /// Resolves to the training report; the head becomes the engine's model.
    pub fn train(&self, config: JsValue, on_epoch: Function, cancelled: Function, pause: Function) -> Promise {
        let parsed = parse_train_config(config);
        self.promise(move |state| async move {
            let (config, use_views) = parsed?;
            let (store, augment) = {
                let s = state.borrow();
                (if use_views { s.store.clone() } else { eval_views_only(&s.store)? }, s.augment.clone())
            };
            let mut epoch_cb = |stats: &EpochStats| {
                if let Ok(v) = to_value(stats) {
                    // A throwing progress callback must not abort training.
                    let _ = on_epoch.call1(&JsValue::NULL, &v);
                }
            };
            let is_cancelled = || cancelled.call0(&JsValue::NULL).map(|v| v.is_truthy()).unwrap_or(false);
            let pause_fn = || -> std::pin::Pin<Box<dyn Future<Output = ()>>> {
                let p = pause.call0(&JsValue::NULL).ok().and_then(|v| v.dyn_into::<Promise>().ok());
                Box::pin(async move {
                    if let Some(p) = p {
                        let _ = JsFuture::from(p).await;
                    }
                })
            };
            // The head is tiny: the CPU backend beats a GPU round trip per batch.
            let outcome = train_pausing(&store, &config, &Device::flex(), &mut epoch_cb, &is_cancelled, &pause_fn).await?;
            let classifier = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head)?;
            let model = Model::from_training(classifier, config.clone(), augment, &outcome.report);
            let mut s = state.borrow_mut();
            s.training = Some(config);
            s.model = Some(model);
            Ok(outcome.report)
        })
    }

    /// Whether a model is loaded or trained (so `predict` can run).
    #[wasm_bindgen(getter, js_name = hasModel)]
    pub fn has_model(&self) -> bool {
        self.state.borrow().model.is_some()
    }

    /// Sensitivity and specificity (with 95 % intervals) of the current model's held-out
    /// metrics at decision `threshold`: `{ threshold, sensitivity, specificity,
    /// sensitivityInterval, specificityInterval }`, or `null` without two-class metrics.
    #[wasm_bindgen(js_name = operatingPoint)]
    pub fn operating_point(&self, threshold: f64) -> Result<JsValue, JsValue> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(to_js(Error::InvalidArgument(format!("threshold is {threshold}; use 0 to 1"))));
        }
        let s = self.state.borrow();
        let point = s.model.as_ref().and_then(|m| m.metrics.as_ref()).and_then(|m| m.operating_point_at(threshold));
        to_value(&point).map_err(to_js)
    }

    /// The current model's decision threshold and operating point (two classes), or `null`.
    #[wasm_bindgen(getter)]
    pub fn decision(&self) -> Result<JsValue, JsValue> {
        to_value(&self.state.borrow().model.as_ref().and_then(|m| m.classifier.decision.clone())).map_err(to_js)
    }

    /// Decide at `threshold` from now on (two-class models); returns the new decision.
    #[wasm_bindgen(js_name = setThreshold)]
    pub fn set_threshold(&self, threshold: f64) -> Result<JsValue, JsValue> {
        let mut s = self.state.borrow_mut();
        let model = s.model.take().ok_or_else(|| to_js(Error::Data("no model yet: train one or load a model file first".into())))?;
        match model.clone().with_threshold(threshold) {
            Ok(m) => {
                let decision = m.classifier.decision.clone();
                s.model = Some(m);
                to_value(&decision).map_err(to_js)
            }
            Err(e) => {
                s.model = Some(model);
                Err(to_js(e))
            }
        }
    }

    /// Class names of the current model, in output order.
    #[wasm_bindgen(getter, js_name = modelClasses)]
    pub fn model_classes(&self) -> Vec<String> {
        self.state.borrow().model.as_ref().map(|m| m.classifier.classes.clone()).unwrap_or_default()
    }

    /// Classify an image with the current model: `{ top: [{label, probability}], heatmap }`.
    /// `framed`: the image already is the network's input square (an input preview), so it is
    /// only resized, not framed again.
    #[allow(clippy::too_many_arguments)]
    pub fn predict(&self, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>, top_k: usize, heatmap: bool, framed: bool) -> Promise {
        self.promise(move |state| async move {
            let classifier = state
                .borrow()
                .model
                .as_ref()
                .map(|m| m.classifier.clone())
                .ok_or_else(|| Error::Data("no model yet: train one or load a model file first".into()))?;
            let img = decode_input(bytes, width, height, rgba)?;
            let (img, classifier) = (&img, &classifier);
            with_backbone(&state, |bb| async move { predict_image(&bb, classifier, img, top_k, heatmap, framed).await }).await
        })
    }

    /// The embedding of an image's evaluation view, made the engine's way (see `features`).
    pub fn embed(&self, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>) -> Promise {
        self.promise(move |state| async move {
            let img = decode_input(bytes, width, height, rgba)?;
            let spec = *state.borrow().store.spec();
            let (img, spec) = (&img, &spec);
            with_backbone(&state, |bb| async move { spec.embed_image(&bb, img).await }).await
        })
    }

    /// Benchmark helper: decode and preprocess `bytes` once, then run `rounds` forward passes of
    /// `batch` copies. Resolves to the seconds the forward passes took (readback included,
    /// decoding excluded, so the number compares with other runtimes fed tensors).
    #[wasm_bindgen(js_name = embedBatch)]
    pub fn embed_batch(&self, bytes: Vec<u8>, batch: usize, rounds: usize) -> Promise {
        self.promise(move |state| async move {
            if !(1..=64).contains(&batch) || !(1..=1000).contains(&rounds) {
                return Err(Error::InvalidArgument(format!("batch is {batch}, rounds {rounds}; use 1 to 64 and 1 to 1000")));
            }
            let spec = *state.borrow().store.spec();
            let input = preprocess::preprocess_eval(&crate::image::decode(&bytes)?, spec.crop(), spec.input_size())?;
            let refs: Vec<&[f32]> = (0..batch).map(|_| input.as_slice()).collect();
            let (refs, spec) = (&refs, &spec);
            let start = js_sys::Date::now();
            for _ in 0..rounds {
                with_backbone(&state, |bb| async move { spec.embed_inputs(&bb, refs).await }).await?;
            }
            Ok((js_sys::Date::now() - start) / 1000.0)
        })
    }

    /// The current model as a model file (the same format the CLI reads and writes).
    #[wasm_bindgen(js_name = exportModel)]
    pub fn export_model(&self) -> Result<Vec<u8>, JsValue> {
        self.state
            .borrow()
            .model
            .as_ref()
            .ok_or_else(|| Error::Data("no model to export: train one first".into()))
            .and_then(Model::to_bytes)
            .map_err(to_js)
    }

    /// Everything (classes, embeddings, settings, model, and `extra` app data) as a project file.
    #[wasm_bindgen(js_name = saveProject)]
    pub fn save_project(&self, extra: JsValue) -> Result<Vec<u8>, JsValue> {
        let mut s = self.state.borrow_mut();
        if !extra.is_undefined() {
            s.extra = json_from_js(&extra, "extra").map_err(to_js)?;
        }
        let project = Project {
            store: s.store.clone(),
            augment: s.augment.clone(),
            training: s.training.clone(),
            model: s.model.clone(),
            extra: s.extra.clone(),
        };
        project.to_bytes().map_err(to_js)
    }

    /// What changed since the save of generation `since` (the last one the caller stored;
    /// `null`/`undefined`: nothing is stored yet), with `extra` as the app data (if given):
    /// `{ generation, clear, put: [[key, Uint8Array], …], remove: [key, …] }`. Store it in one
    /// transaction — empty the store first when `clear` — then pass `generation` as the next
    /// `since`. A save not stored is simply written again by the next call with the old `since`.
    #[wasm_bindgen(js_name = saveParts)]
    pub fn save_parts(&self, extra: JsValue, since: Option<f64>) -> Result<JsValue, JsValue> {
        let mut s = self.state.borrow_mut();
        if !extra.is_undefined() {
            s.extra = json_from_js(&extra, "extra").map_err(to_js)?;
        }
        // Generations are whole numbers below 2^53; anything else is one this engine never gave.
        let since = since.filter(|g| *g >= 0.0 && g.fract() == 0.0 && *g < 9.0e15).map(|g| g as u64);
        let s = &mut *s;
        let project = ProjectRef { store: &s.store, augment: &s.augment, training: s.training.as_ref(), model: s.model.as_ref(), extra: &s.extra };
        let changes = s.parts.changes(project, since).map_err(to_js)?;
        let put = js_sys::Array::new();
        for (key, bytes) in &changes.put {
            put.push(&js_sys::Array::of2(&key.into(), &js_sys::Uint8Array::from(bytes.as_slice())));
        }
        let out = js_sys::Object::new();
        let set = |key: &str, value: &JsValue| set_field(&out, key, value, "the saved parts").map_err(to_js);
        set("generation", &(changes.generation as f64).into())?;
        set("clear", &changes.clear.into())?;
        set("put", &put)?;
        set("remove", &changes.remove.iter().map(|k| JsValue::from_str(k)).collect::<js_sys::Array>())?;
        Ok(out.into())
    }

    /// The app data stored with the project (`null` if none).
    #[wasm_bindgen(getter)]
    pub fn extra(&self) -> Result<JsValue, JsValue> {
        to_value(&self.state.borrow().extra).map_err(to_js)
    }
}

/// The records of a stored project as JS gives them: an object of `Uint8Array`s by key.
fn parts_from_js(parts: &JsValue) -> Result<Parts> {
    let bad = || Error::InvalidArgument("parts must be an object of Uint8Arrays by key, as saveParts wrote them".into());
    let object = parts.dyn_ref::<js_sys::Object>().ok_or_else(bad)?;
    let mut out = Parts::new();
    for entry in js_sys::Object::entries(object).iter() {
        let entry: js_sys::Array = entry.dyn_into().map_err(|_| bad())?;
        let key = entry.get(0).as_string().ok_or_else(bad)?;
        let bytes: js_sys::Uint8Array = entry.get(1).dyn_into().map_err(|_| bad())?;
        out.insert(key, bytes.to_vec());
    }
    Ok(out)
}

/// How an image's views are made: the feature spec (its crop decided) and the augmentation.
/// What [`Engine::view_plan`] hands to the [`Embedder`]s, so they embed exactly as the engine
/// would and the engine keeps every decision.
#[derive(serde::Serialize, serde::Deserialize)]
struct ViewPlan {
    spec: FeatureSpec,
    augment: AugmentConfig,
}

impl ViewPlan {
    fn to_string(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Backend(format!("cannot write the view plan: {e}")))
    }

    fn parse(text: &str) -> Result<Self> {
        let plan: Self = serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("view plan: {e}")))?;
        plan.augment.validate()?;
        Ok(plan)
    }
}

/// The seed of an image's augmented views: from its content, so re-adding the same file gives
/// the same views whatever the order or the worker.
fn view_seed(bytes: Option<&[u8]>, rgba: Option<&[u8]>) -> u64 {
    match (bytes, rgba) {
        (Some(b), _) => fingerprint(b),
        (None, Some(px)) => fingerprint(px),
        (None, None) => 0,
    }
}

/// A backbone without a project: the extra workers of the package's pool decode, preprocess
/// and embed images under an [`Engine`]'s view plan, and that engine appends the results. On
/// the CPU backend only, so its embeddings are bit-identical to the engine's own.
#[wasm_bindgen]
pub struct Embedder {
    backbone: Rc<Backbone>,
}

#[wasm_bindgen]
impl Embedder {
    /// Load the backbone from `weights` on the CPU backend.
    pub fn load(weights: Vec<u8>) -> Result<Embedder, JsValue> {
        let backbone = Backbone::load(&weights, Device::flex()).map_err(to_js)?;
        Ok(Self { backbone: Rc::new(backbone) })
    }

    /// Decode an image (file bytes, or `width × height` RGBA pixels) and embed every view of it
    /// under `plan` (from `engine.viewPlan`): resolves to `{ views }`, a `Float32Array` of the
    /// views' embeddings one after the other, for `engine.addViews`, with the image's `thumb`
    /// and `preview` JPEGs when their sides are given (as `addImage`). Errors are the ones
    /// `addImage` gives for the same image.
    #[wasm_bindgen(js_name = embedViews)]
    #[allow(clippy::too_many_arguments)]
    pub fn embed_views(&self, plan: String, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>, thumb: u32, preview: u32) -> Promise {
        let backbone = self.backbone.clone();
        future_to_promise(async move {
            let run = async {
                let sizes = thumbnail_sizes(thumb, preview)?;
                let (plan, seed, img) = plan_input(&plan, bytes, width, height, rgba)?;
                plan.spec.check_backbone(&backbone)?;
                let (views, thumbnails) = embed_with_thumbnails(&backbone, &plan, &img, seed, sizes).await?;
                Ok(Made { id: None, views: Some(views.concat()), thumbnails })
            };
            run.await.and_then(IntoJs::into_js).map_err(to_js)
        })
    }
}

/// The plan, view seed and decoded image of an `embedViews` call, in the order `addImage`
/// meets their errors.
fn plan_input(plan: &str, bytes: Option<Vec<u8>>, width: u32, height: u32, rgba: Option<Vec<u8>>) -> Result<(ViewPlan, u64, crate::image::Rgb)> {
    let plan = ViewPlan::parse(plan)?;
    let seed = view_seed(bytes.as_deref(), rgba.as_deref());
    let img = decode_input(bytes, width, height, rgba)?;
    Ok((plan, seed, img))
}

/// An example id as JS passes it (a number), checked to be one `addImage` could have returned.
fn example_id(id: f64) -> Result<u64> {
    if !(id >= 0.0 && id.fract() == 0.0 && id < 9.0e15) {
        return Err(Error::InvalidArgument(format!("example id is {id}; ids are the whole numbers addImages returned")));
    }
    Ok(id as u64)
}

/// Split the JS training options into [`TrainConfig`] and whether to use augmented views.
fn parse_train_config(config: JsValue) -> Result<(TrainConfig, bool)> {
    let mut value: serde_json::Value = from_value(config, "train options")?;
    let use_views = match value.as_object_mut().and_then(|o| o.remove("augment")) {
        None | Some(serde_json::Value::Bool(true)) | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(false)) => false,
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "train option augment is {other}; use true (train on the augmented views stored with each image) \
                 or false (evaluation views only) — how views are drawn is set before adding images"
            )))
        }
    };
    let config: TrainConfig =
        serde_json::from_value(value).map_err(|e| Error::InvalidArgument(format!("train options: {e}")))?;
    config.validate()?;
    Ok((config, use_views))
}

/// A copy of the store keeping only each example's evaluation view.
fn eval_views_only(store: &Store) -> Result<Store> {
    let examples = store
        .examples()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.views.truncate(1);
            e
        })
        .collect();
    Store::from_parts(*store.spec(), store.class_names().to_vec(), examples)
}
