// Bundles TypeBox (its type builder and its compiler) into one ES module, dist/vendor/typebox.js,
// which the code imports as `#typebox` (package.json "imports"; the types are TypeBox's own, see
// src/vendor/typebox.d.ts). Why: every dfs process loads the protocol's schemas, and Node 20 loads
// TypeBox's 219 ES module files in ~0.25 CPU-s, more than Node's own start; the one bundled file
// loads in ~0.02 (docs/performance.md, "Command start-up"). The code is TypeBox's, unchanged.

import {build} from 'esbuild'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

await build({
  stdin: {
    contents: [
      "export * from '@sinclair/typebox'",
      "export {TypeCompiler, TypeCheck, TypeCompilerTypeGuardError, TypeCompilerUnknownTypeError} from '@sinclair/typebox/compiler'",
    ].join('\n'),
    resolveDir: root,
    sourcefile: 'typebox-entry.js',
  },
  absWorkingDir: root,
  outfile: 'dist/vendor/typebox.js',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
})
