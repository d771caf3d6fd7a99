// `npm pack` of www/ gives a tarball that installs and imports: the files list, the exports
// map and the types are what a user of the npm package gets. `--ignore-scripts` packs www/pkg as
// it is (the prepack script would first make it a publish build; tests/publish.sh checks that).

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { ROOT } from './helpers.mjs';

it('npm pack gives an installable, importable package', { timeout: 120_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'headtune-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: path.join(ROOT, 'www'), encoding: 'utf8' });
    const [info] = JSON.parse(out);
    const files = info.files.map((f) => f.path).sort();
    for (const f of ['lib/index.js', 'lib/index.d.ts', 'lib/channel.js', 'lib/worker.js', 'lib/images.js', 'lib/pool.js', 'lib/simd.js', 'lib/testing.js', 'lib/testing.d.ts', 'lib/weights.d.ts', 'pkg/headtune.js', 'pkg/headtune_bg.wasm', 'pkg/headtune_relaxed_bg.wasm', 'pkg/efficientnet_lite0.safetensors', 'package.json', 'LICENSE']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    assert.ok(!files.some((f) => f.endsWith('.sh') || f.endsWith('.py')), 'no build scripts in the tarball');
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(tmp, info.filename)], { cwd: app, stdio: 'pipe' });
    const mod = execFileSync('node', ['--input-type=module', '-e', "const m = await import('headtune'); console.log(JSON.stringify(Object.keys(m).sort()))"], { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(mod), ['BACKBONES', 'BACKENDS', 'CROPS', 'Classifier', 'POOLINGS', 'Tuner', 'preload']);
    // The test hooks are a separate entry point, not part of the app API.
    const hooks = execFileSync('node', ['--input-type=module', '-e', "const m = await import('headtune/testing'); console.log(JSON.stringify(Object.keys(m).sort()))"], { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(hooks), ['benchmark', 'memory', 'pool', 'simulateBackendFailure', 'simulatePanic']);
    assert.match(fs.readFileSync(path.join(app, 'node_modules/headtune/LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
    // Only Lite0's weights ship (Lite1/Lite2 are hosted by whoever wants them: README).
    assert.ok(!files.some((f) => /lite[12]\.safetensors$/.test(f)), 'no Lite1/Lite2 weights in the tarball');
    const pkg = JSON.parse(fs.readFileSync(path.join(app, 'node_modules/headtune/package.json'), 'utf8'));
    assert.equal(pkg.exports['.'].types, './lib/index.d.ts');
    assert.equal(pkg.sideEffects, false);
    // `exports` is the one entry map (no `main`/`browser` duplicating it).
    assert.equal(pkg.main, undefined);
    assert.equal(pkg.browser, undefined);
    assert.equal(pkg.exports['./weights'].types, './lib/weights.d.ts');
    console.log(`  ${info.filename}: ${info.files.length} files, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

it('both wasm builds run their constructors once, not on every call, and export the same API', () => {
  // Without an explicit `__wasm_call_ctors` call in the start function the wasm linker makes the
  // module a "command" and wraps every export to re-run all constructors first (0.3 ms of CPU
  // per call into the engine). A wrapped module exports `<name>_command_export` functions.
  // Node 20's V8 has relaxed SIMD behind a flag (browsers ship it on).
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const exportsOf = (file) => WebAssembly.Module.exports(new WebAssembly.Module(fs.readFileSync(path.join(ROOT, 'www/pkg', file)))).map((e) => e.name);
  const plain = exportsOf('headtune_bg.wasm');
  for (const [file, names] of [['headtune_bg.wasm', plain], ['headtune_relaxed_bg.wasm', exportsOf('headtune_relaxed_bg.wasm')]]) {
    assert.ok(names.includes('__wbindgen_start'), `${file} has its start function`);
    const wrapped = names.filter((n) => n.endsWith('command_export'));
    assert.deepEqual(wrapped, [], `${file}: exports wrapped to re-run constructors`);
    assert.deepEqual(names, plain, `${file} exports what the plain build does (one headtune.js serves both)`);
  }
  // The relaxed build's kernels use f32x4.relaxed_madd (0xfd 0x85 0x02; the plain build, which
  // must compile where relaxed SIMD is missing, has the byte sequence only in data).
  const count = (file) => {
    const b = fs.readFileSync(path.join(ROOT, 'www/pkg', file));
    let n = 0;
    for (let i = b.indexOf(0xfd); i >= 0 && i + 2 < b.length; i = b.indexOf(0xfd, i + 1)) if (b[i + 1] === 0x85 && b[i + 2] === 0x02) n++;
    return n;
  };
  assert.ok(count('headtune_relaxed_bg.wasm') > 100, 'the relaxed build has fused multiply-adds');
});

it('lib/simd.js picks the relaxed-SIMD build only where the engine can compile it', () => {
  // Node 20's V8 is a JS engine without relaxed SIMD unless asked: both answers, for real.
  const pick = (flags) => execFileSync('node', [...flags, '--input-type=module', '-e', `const m = await import(${JSON.stringify(path.join(ROOT, 'www/lib/simd.js'))}); console.log(JSON.stringify(m))`], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(pick([])), { RELAXED_SIMD: false, WASM_FILE: 'headtune_bg.wasm' });
  assert.deepEqual(JSON.parse(pick(['--experimental-wasm-relaxed-simd'])), { RELAXED_SIMD: true, WASM_FILE: 'headtune_relaxed_bg.wasm' });
});
