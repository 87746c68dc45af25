// Bundles what a client command runs without oclif (src/cli/fast-runner.ts and every module it
// imports, TypeBox and undici's pool included) into one CommonJS file, dist/src/cli/client-bundle.cjs,
// which bin/run.js loads through src/cli/client-bundle.ts with a V8 code cache. Why: Node 20 loads
// ES modules file by file and compiles every function again in every process (it has no
// module.enableCompileCache); a classic script compiled by vm.Script can take V8's cached code.
// `dfs master` and `dfs keeper` stay outside (fastify, SQLite: servers start once and run long).
// npm packages stay outside too and load as they do from dist/src (cli-progress, at a put's first bar).
//
// The first line of the bundle names the sha256 of the rest: the code cache records it and is
// used only for that bundle (V8 itself checks only the source's length).

import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {dirname, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const outfile = `${root}dist/src/cli/client-bundle.cjs`
const outDir = dirname(outfile)

await build({
  entryPoints: [`${root}dist/src/cli/fast-runner.js`],
  absWorkingDir: root,
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
  plugins: [
    {
      name: 'dfs-client',
      setup(build) {
        // The servers' commands are imported from dist/src/cli/ beside the bundle, as before.
        build.onResolve({filter: /^\.\/(master|keeper)\.js$/}, ({path}) => ({path, external: true}))
        // A module's own URL (file-hasher's worker is a file beside it): the file it was, not the bundle.
        build.onLoad({filter: /[/\\]dist[/\\]src[/\\].*\.js$/}, ({path}) => {
          const contents = readFileSync(path, 'utf8')
          if (!contents.includes('import.meta.url')) return undefined
          const url = `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(relative(outDir, path))})).href`
          return {contents: contents.replaceAll('import.meta.url', url), loader: 'js'}
        })
      },
    },
  ],
})

// Node 20 runs no import() in a vm.Script (without --experimental-vm-modules) nor in code from a
// cache: the bundle calls __dfsImport, which src/cli/client-bundle.ts passes in, instead. esbuild
// writes every import() it leaves as `import("specifier")`; the comments of undici's own use quotes.
const code = readFileSync(outfile, 'utf8').replaceAll(/\bimport\(("[^"]+")\)/g, '__dfsImport($1)')
if (/\bimport\((?!')/.test(code)) throw new Error(`${outfile}: an import() is left that __dfsImport does not replace`)
writeFileSync(outfile, `// dfs client bundle sha256:${createHash('sha256').update(code).digest('hex')}\n${code}`)
