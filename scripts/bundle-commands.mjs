// Bundles what the fast runner runs (src/cli/fast-runner.ts and every module it imports) into
// CommonJS files that bin/run.js loads through src/cli/client-bundle.ts with a V8 code cache. Why:
// Node 20 loads ES modules file by file, has Node parse every CommonJS package an ES module imports
// (cjs-module-lexer) and compiles every function again in every process (it has no
// module.enableCompileCache); a classic script compiled by vm.Script can take V8's cached code.
//
// - dist/src/cli/client-bundle.cjs: ls, stat, get, put, rm, cat. dfs's modules, TypeBox and undici's
//   pool; npm packages stay outside and load as they do from dist/src (cli-progress, at a put's first bar).
// - dist/src/cli/master-bundle.cjs and keeper-bundle.cjs: `dfs master` and `dfs keeper`, each with the
//   pure-JS npm packages a server loads (fastify and its dependencies, pino, prom-client, jose, send,
//   mp4box...), which are most of a server's start. Outside: better-sqlite3 (native), and what
//   lazy-validators.ts requires from fastify's own directory at a route's first request (Ajv).
//
// An import() of a module in a bundle stays lazy: esbuild runs that module's code at the call, not
// before. The first line of a bundle names the sha256 of the rest: the code cache records it and is
// used only for that bundle (V8 itself checks only the source's length).

import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {dirname, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const COMMANDS = ['ls', 'stat', 'get', 'put', 'rm', 'cat', 'master', 'keeper']

/** One bundle of the fast runner with `commands` in it (the others are left out: never run from it). */
async function bundle(name, commands, {packages}) {
  const outfile = `${root}dist/src/cli/${name}-bundle.cjs`
  const outDir = dirname(outfile)
  const left = COMMANDS.filter((command) => !commands.includes(command))
  await build({
    entryPoints: [`${root}dist/src/cli/fast-runner.js`],
    absWorkingDir: root,
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    // fastify's own compilers: lazy-validators.ts requires them from fastify's directory at a route's
    // first request, and fastify itself never does (it is given a compilersFactory).
    ...(packages ? {external: ['better-sqlite3', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler']} : {packages: 'external'}),
    plugins: [
      {
        name: 'dfs-commands',
        setup(build) {
          // The other bundles' commands: imported from dist/src/cli/ beside the bundle (never, in practice).
          const others = new RegExp(`^\\./(${left.join('|')})\\.js$`)
          build.onResolve({filter: others}, ({path, importer}) => (dirname(importer) === outDir ? {path, external: true} : undefined))
          // A module's own URL (file-hasher's worker is a file beside it; the dashboard's web/ directory;
          // fastify resolved from lazy-validators.ts): the file it was, not the bundle.
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
  writeFileSync(outfile, `// dfs ${name} bundle sha256:${createHash('sha256').update(code).digest('hex')}\n${code}`)
}

await bundle('client', ['ls', 'stat', 'get', 'put', 'rm', 'cat'], {packages: false})
await bundle('master', ['master'], {packages: true})
await bundle('keeper', ['keeper'], {packages: true})
