// Which build of the engine this browser runs. The package ships two (wasm-pack.toml
// [variants]): plain SIMD128, and relaxed SIMD, whose kernels use fused multiply-adds (1.28× the
// images/s in Chromium) but which only browsers with relaxed SIMD can compile (Chrome 114+;
// not Safari). Validating a tiny module that uses one relaxed instruction decides, before
// anything is downloaded, so a browser fetches only the build it runs.

/** v128.const 0 (opcode 0xfd 0x0c and 16 zero bytes). */
const ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)];
/** A function () → v128: f32x4.relaxed_madd (0xfd 0x85 0x02) of three zeros. */
const BODY = [0x00, ...ZERO, ...ZERO, ...ZERO, 0xfd, 0x85, 0x02, 0x0b];
const PROBE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
  ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b], // type section: () → v128
  ...[0x03, 0x02, 0x01, 0x00], // function section: one function of that type
  ...[0x0a, BODY.length + 2, 0x01, BODY.length, ...BODY], // code section
]);

/** Whether this browser (or worker) can run the relaxed-SIMD build. */
export const RELAXED_SIMD = typeof WebAssembly === 'object' && WebAssembly.validate(PROBE);

/** The engine's wasm file for this browser, in the package's pkg/. */
export const WASM_FILE = RELAXED_SIMD ? 'headtune_relaxed_bg.wasm' : 'headtune_bg.wasm';
