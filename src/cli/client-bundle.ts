import {closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {setFlagsFromString} from 'node:v8'
import vm from 'node:vm'

import type {runFast} from './fast-runner.js'

/** The client's commands in one file, made by scripts/bundle-commands.mjs at build time. */
export const CLIENT_BUNDLE = fileURLToPath(new URL('client-bundle.cjs', import.meta.url))

/** V8's code for the bundle, written by the first command that runs it (beside it, if dist/ is writable). */
export const CLIENT_CODE_CACHE = `${CLIENT_BUNDLE}.v8-cache`

/** `dfs master` and `dfs keeper`: a bundle each, with the npm packages they load (scripts/bundle-commands.mjs). */
export const SERVER_BUNDLES: Readonly<Record<string, string>> = {
  master: fileURLToPath(new URL('master-bundle.cjs', import.meta.url)),
  keeper: fileURLToPath(new URL('keeper-bundle.cjs', import.meta.url)),
}

/** What a cache file begins with: which bundle its code is for, and a checksum of that code. */
interface CacheHeader {
  bundle: string
  node: string
  length: number
  checksum: number
}

/**
 * The fast runner, from a bundle with V8's cached code when a cache for this very bundle is
 * there (else it is compiled, and its code cached when the process exits), or from dist/src when
 * there is no bundle. `dfs master` and `dfs keeper` run from their own bundles (fastify and the
 * other packages in them), any other command from the client's. Why: Node 20 compiles every
 * function of every module again in each process, and loads ES modules and the CommonJS packages
 * they import file by file; with one file and its code cached a client command starts ~0.03
 * CPU-s sooner, a server ~0.4 (docs/performance.md).
 */
export async function loadFastRunner(id: string | undefined, bundle = (id !== undefined && Object.hasOwn(SERVER_BUNDLES, id) ? SERVER_BUNDLES[id] : undefined) ?? CLIENT_BUNDLE, cache = `${bundle}.v8-cache`): Promise<{runFast: typeof runFast}> {
  if (!existsSync(bundle)) return import('./fast-runner.js')
  const loaded = loadBundle(bundle, cache) as {runFast: typeof runFast}
  // A process that hands its argv to oclif (help, an error to report) has run only the parser of
  // the bundle: it writes no cache, which would hold that little code until the next build, and
  // leaves it to the next process that runs the command (a server start otherwise ~0.05 CPU-s dearer).
  return {
    async runFast(argv) {
      if (await loaded.runFast(argv)) return true
      notToCache.add(cache)
      return false
    },
  }
}

/** Caches not to write at exit: this process ran too little of their bundle. */
const notToCache = new Set<string>()

/** Runs a CommonJS bundle with the code of `cache` if it was made for it, and returns its exports. */
export function loadBundle(bundle: string, cache: string): unknown {
  // Why here: V8 takes a cache only under the flags it was made with, and peer-client.ts sets
  // this one (see there) when the bundle runs; set first, the cache is made and read under it.
  setFlagsFromString('--liftoff-only')
  const source = readFileSync(bundle, 'utf8')
  const bundleId = source.slice(0, source.indexOf('\n'))
  const cachedData = cachedCode(cache, bundleId)
  // The same wrapper Node gives a CommonJS module; a failing bundle's stack names the file.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname, __dfsImport) {${source}\n})`, {
    filename: bundle,
    cachedData,
  })
  // A cache of this bundle that V8 refuses was made under other V8 flags (a run with NODE_OPTIONS,
  // or a profiler's): a plain `node` remakes it, a run under flags does not, so that runs under
  // different flags do not remake it in turn, each for the next to refuse.
  const plainNode = process.execArgv.length === 0 && !process.env['NODE_OPTIONS']
  if (cachedData === undefined || (script.cachedDataRejected === true && plainNode)) {
    process.once('exit', () => {
      if (!notToCache.has(cache)) writeCache(cache, bundleId, script)
    })
  }
  const module = {exports: {}}
  // Why not import() in the bundle: Node 20 runs it in a vm.Script only under
  // --experimental-vm-modules, and not at all in code from a cache; scripts/bundle-commands.mjs makes
  // the bundle's import() calls (cli-progress; the commands of the other bundles) this function.
  const importModule = async (specifier: string): Promise<unknown> => import(specifier.startsWith('.') ? new URL(specifier, pathToFileURL(bundle)).href : specifier)
  ;(script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(bundle), module, bundle, dirname(bundle), importModule)
  return module.exports
}

/** The cached code for this bundle, or undefined when there is none, or it is for another bundle or Node, or damaged. */
function cachedCode(cache: string, bundleId: string): Buffer | undefined {
  let file: Buffer
  try {
    file = readFileSync(cache)
  } catch {
    return undefined
  }

  const headerEnd = file.indexOf(10)
  if (headerEnd < 0) return undefined
  let header: Partial<CacheHeader>
  try {
    header = JSON.parse(file.subarray(0, headerEnd).toString('utf8')) as Partial<CacheHeader>
  } catch {
    return undefined
  }

  const code = file.subarray(headerEnd + 1)
  if (header.bundle !== bundleId || header.node !== process.version || header.length !== code.length || header.checksum !== checksum(code)) return undefined
  return code
}

/**
 * Caches the code V8 has compiled by now (the functions this command ran, not only the top level),
 * through a temporary file and a rename so that no process reads half of one. A dist/ this
 * process may not write to just goes without a cache.
 */
function writeCache(cache: string, bundleId: string, script: vm.Script): void {
  const temporary = `${cache}.${process.pid}.tmp`
  try {
    // Opened first: where dist/ is read-only, no process pays for code it cannot keep.
    const fd = openSync(temporary, 'w')
    try {
      const code = script.createCachedData()
      const header: CacheHeader = {bundle: bundleId, node: process.version, length: code.length, checksum: checksum(code)}
      writeSync(fd, `${JSON.stringify(header)}\n`)
      writeSync(fd, code)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }

    renameSync(temporary, cache)
  } catch {
    rmSync(temporary, {force: true})
  }
}

/**
 * FNV-1a over the code's bytes, four at a time: V8 (release builds) does not check a code cache's
 * own checksum, and damaged code must not be run. Not a defence against an attacker, who could
 * as well edit the bundle.
 */
export function checksum(code: Buffer): number {
  let hash = 0x811c9dc5
  const whole = code.length >> 2
  const words = code.byteOffset % 4 === 0 ? new Int32Array(code.buffer, code.byteOffset, whole) : new Int32Array(Uint8Array.prototype.slice.call(code, 0, whole * 4).buffer)
  for (let index = 0; index < whole; index++) hash = Math.imul(hash ^ words[index]!, 0x01000193)
  for (let index = whole * 4; index < code.length; index++) hash = Math.imul(hash ^ code[index]!, 0x01000193)
  return hash >>> 0
}
