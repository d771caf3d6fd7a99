"""wasm-opt through libbinaryen: the subset of wasm-opt's command line that www/build.sh uses.

Binaryen's own command-line tools are not in any registry this project can use at native speed
(Debian's is version 108, which corrupts our module; npm's runs under Node, several times slower;
`cargo install wasm-opt` compiles binaryen's C++ first). The PyPI wheel `icpp-binaryen` bundles
the official libbinaryen 116 shared library; this calls its C API with ctypes (no compiler, no
cffi): read, set the features, optimise with the default pipeline at the given levels — what
`wasm-opt -O<n>` runs — validate, write. Like wasm-opt without `-g`, the name section is dropped.

Usage: python3 www/wasm_opt.py --lib libbinaryen.so [-O0..-O4|-Os|-Oz] [--enable-FEATURE ...]
                               IN.wasm -o OUT.wasm
       python3 www/wasm_opt.py --lib libbinaryen.so --version
"""

import argparse
import ctypes
import os
import sys

# wasm-opt's --enable-* names → the C API's BinaryenFeature* functions.
FEATURES = {
    "simd": "SIMD128",
    "bulk-memory": "BulkMemory",
    "nontrapping-float-to-int": "NontrappingFPToInt",
    "sign-ext": "SignExt",
    "mutable-globals": "MutableGlobals",
    "reference-types": "ReferenceTypes",
    "multivalue": "Multivalue",
    # The relaxed-SIMD build of the engine (wasm-pack.toml [variants.relaxed]).
    "relaxed-simd": "RelaxedSIMD",
}
# -O<x> → (optimize level, shrink level), as wasm-opt maps them.
LEVELS = {"0": (0, 0), "1": (1, 0), "2": (2, 0), "3": (3, 0), "4": (4, 0), "s": (2, 1), "z": (2, 2)}


class _Written(ctypes.Structure):
    _fields_ = [("binary", ctypes.c_void_p), ("size", ctypes.c_size_t), ("source_map", ctypes.c_void_p)]


def load(path):
    """libbinaryen with the signatures used here declared."""
    lib = ctypes.CDLL(path)
    lib.BinaryenModuleRead.restype = ctypes.c_void_p
    lib.BinaryenModuleRead.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    for name in ("BinaryenModuleOptimize", "BinaryenModuleDispose"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.BinaryenModuleValidate.argtypes = [ctypes.c_void_p]
    lib.BinaryenModuleValidate.restype = ctypes.c_bool
    lib.BinaryenModuleSetFeatures.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.BinaryenModuleAllocateAndWrite.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.BinaryenModuleAllocateAndWrite.restype = _Written
    lib.BinaryenSetOptimizeLevel.argtypes = [ctypes.c_int]
    lib.BinaryenSetShrinkLevel.argtypes = [ctypes.c_int]
    lib.BinaryenSetDebugInfo.argtypes = [ctypes.c_bool]
    for c_name in FEATURES.values():
        getattr(lib, "BinaryenFeature" + c_name).restype = ctypes.c_uint32
    return lib


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", required=True, help="path of libbinaryen.so")
    p.add_argument("--version", action="store_true")
    p.add_argument("-o", dest="output")
    p.add_argument("input", nargs="?")
    args, rest = p.parse_known_args()
    lib = load(args.lib)
    version_file = os.path.join(os.path.dirname(args.lib), "version.txt")
    version = open(version_file).read().strip() if os.path.exists(version_file) else "?"
    if args.version:
        print(f"wasm-opt version {version} (libbinaryen through www/wasm_opt.py)")
        return 0
    level, features = LEVELS["0"], 0
    for flag in rest:
        if flag.startswith("-O") and flag[2:] in LEVELS:
            level = LEVELS[flag[2:]]
        elif flag.startswith("--enable-") and flag[9:] in FEATURES:
            features |= getattr(lib, "BinaryenFeature" + FEATURES[flag[9:]])()
        else:
            p.error(f"unsupported flag {flag} (supported: -O0..-O4, -Os, -Oz, --enable-{{{','.join(FEATURES)}}})")
    if not args.input or not args.output:
        p.error("need IN.wasm and -o OUT.wasm")
    with open(args.input, "rb") as f:
        data = f.read()
    module = lib.BinaryenModuleRead(data, len(data))
    if not module:
        sys.exit(f"wasm_opt.py: could not read {args.input}")
    lib.BinaryenModuleSetFeatures(module, features)
    if not lib.BinaryenModuleValidate(module):
        sys.exit(f"wasm_opt.py: {args.input} does not validate with the features given")
    lib.BinaryenSetOptimizeLevel(level[0])
    lib.BinaryenSetShrinkLevel(level[1])
    lib.BinaryenSetDebugInfo(False)
    lib.BinaryenModuleOptimize(module)
    if not lib.BinaryenModuleValidate(module):
        sys.exit("wasm_opt.py: the optimised module does not validate (not written)")
    out = lib.BinaryenModuleAllocateAndWrite(module, None)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(ctypes.string_at(out.binary, out.size))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, args.output)
    ctypes.CDLL(None).free(ctypes.c_void_p(out.binary))
    lib.BinaryenModuleDispose(module)
    return 0


if __name__ == "__main__":
    sys.exit(main())
