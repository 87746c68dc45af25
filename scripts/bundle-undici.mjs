// Bundles the two parts of undici a Peer uses, its connection pool (lib/dispatcher/agent) and
// request() (lib/api/api-request), with what they need, into one CommonJS file,
// dist/vendor/undici-client.cjs, which src/lib/peer-client.ts requires. Why: every dfs process
// (each client command, each server) loads them, and Node loads 26 files one by one; and undici's
// HTTP/2 client requires node:http2 when it is loaded, which loads node:tls and node:crypto with it
// (30 of the 93 of Node's own modules `dfs ls` loaded). dfs speaks HTTP/1.1 only (no Peer sets
// allowH2), so node:http2 is left out: undici's client-h2.js handles a Node built without it
// (`http2 = {constants: {}}`), and that is what it is given. Measured (docs/performance.md,
// "Start-up and small puts (issue 9, start2)"): `dfs ls` 0.35 -> 0.31 CPU-s. The code is undici's, unchanged.

import {build} from 'esbuild'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

await build({
  stdin: {
    contents: "module.exports = {Agent: require('undici/lib/dispatcher/agent'), request: require('undici/lib/api/api-request')}",
    resolveDir: root,
    sourcefile: 'undici-client-entry.cjs',
    loader: 'js',
  },
  absWorkingDir: root,
  outfile: 'dist/vendor/undici-client.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  plugins: [
    {
      name: 'no-http2',
      setup(build) {
        build.onResolve({filter: /^(node:)?http2$/}, () => ({path: 'http2', namespace: 'no-http2'}))
        build.onLoad({filter: /.*/, namespace: 'no-http2'}, () => ({contents: 'module.exports = {constants: {}}', loader: 'js'}))
      },
    },
  ],
})
