// The code cache of the client's bundle (src/cli/client-bundle.ts): each process below loads a small
// bundle through loadBundle, as bin/run.js loads the real one, and prints what it exports. A cache is
// taken only for the very bundle it was made for (V8 alone checks only the source's length: a
// stale cache of a rebuilt bundle of the same length would run the old code), and a damaged cache
// is never run but replaced.

import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {promisify} from 'node:util'

import {tempDir} from './helpers/cluster.js'

const LOADER = new URL('../src/cli/client-bundle.js', import.meta.url).href

/** A bundle as scripts/bundle-commands.mjs makes one: its first line names it. `value` is what it exports. */
function bundleSource(id: string, value: number): string {
  // Enough functions that V8's cache is not trivially small; the one that answers runs before the cache is made.
  const helpers = Array.from({length: 50}, (_, index) => `function helper${index}(x) { return x + ${index} }`).join('\n')
  return `// dfs client bundle sha256:${id}\n${helpers}\nfunction answer() { return helper0(${value}) }\nmodule.exports = {value: answer()}\n`
}

describe('the client bundle code cache', () => {
  let work: string
  let bundle: string
  let cache: string

  before(async () => {
    work = await tempDir()
    bundle = join(work, 'bundle.cjs')
    cache = join(work, 'bundle.cjs.v8-cache')
  })
  after(async () => {
    if (work) await rm(work, {recursive: true, force: true})
  })

  /** Loads the bundle in a new process (under the V8 flags given): what it exported. */
  async function load(flags: string[] = []): Promise<unknown> {
    // A script file, not -e: a plain `node FILE` has no execArgv, as `dfs` has none.
    const script = join(work, 'load.mjs')
    await writeFile(script, `const {loadBundle} = await import(${JSON.stringify(LOADER)})\nconsole.log(JSON.stringify(loadBundle(${JSON.stringify(bundle)}, ${JSON.stringify(cache)})))\n`)
    const {stdout} = await promisify(execFile)(process.execPath, [...flags, script], {env: {...process.env, NODE_OPTIONS: ''}})
    return JSON.parse(stdout) as unknown
  }

  /** The cache file's inode: a new one when a process wrote a new cache (through a rename). */
  async function cacheInode(): Promise<number> {
    return (await stat(cache)).ino
  }

  test('is written by the first process, then used as it is, and never for another bundle', async () => {
    await rm(cache, {force: true})
    await writeFile(bundle, bundleSource('a'.repeat(64), 1))
    assert.deepEqual(await load(), {value: 1})
    const written = await cacheInode()
    assert.deepEqual(await load(), {value: 1})
    assert.equal(await cacheInode(), written, 'a cache for this bundle is used, not written again')

    // A rebuilt bundle of the very same length: only the first line tells the cache is not for it.
    const rebuilt = bundleSource('b'.repeat(64), 2)
    assert.equal(rebuilt.length, bundleSource('a'.repeat(64), 1).length)
    await writeFile(bundle, rebuilt)
    assert.deepEqual(await load(), {value: 2})
    const rewritten = await cacheInode()
    assert.notEqual(rewritten, written, 'the stale cache is replaced')
    assert.match(await readFile(cache, 'latin1'), new RegExp(`^\\{"bundle":"// dfs client bundle sha256:${'b'.repeat(64)}"`))
    assert.deepEqual(await load(), {value: 2})
    assert.equal(await cacheInode(), rewritten)
  })

  test('a cache V8 refuses (made under other V8 flags) is remade by a plain node only', async () => {
    await rm(cache, {force: true})
    await writeFile(bundle, bundleSource('d'.repeat(64), 4))
    assert.deepEqual(await load(['--no-opt']), {value: 4})
    const underFlag = await cacheInode()
    assert.deepEqual(await load(), {value: 4})
    const plain = await cacheInode()
    assert.notEqual(plain, underFlag, 'a plain node remade the cache V8 refused')
    assert.deepEqual(await load(['--no-opt']), {value: 4})
    assert.equal(await cacheInode(), plain, 'a run under a flag leaves the cache of plain runs alone')
    assert.deepEqual(await load(), {value: 4})
    assert.equal(await cacheInode(), plain, 'and plain runs take it')
  })

  test('a damaged or cut cache is not run, and is replaced by one that is then used', async () => {
    await rm(cache, {force: true})
    await writeFile(bundle, bundleSource('c'.repeat(64), 3))
    assert.deepEqual(await load(), {value: 3})
    const good = await readFile(cache)

    // Bytes of V8's code flipped, past the header line (whose checksum then no longer matches).
    const damaged = Buffer.from(good)
    const code = damaged.indexOf(10) + 1
    for (let index = code + 64; index < damaged.length; index += 97) damaged[index] = damaged[index]! ^ 0xff
    for (const bad of [damaged, good.subarray(0, good.length - 100), Buffer.from('not a cache')]) {
      await writeFile(cache, bad)
      assert.deepEqual(await load(), {value: 3})
      assert.notDeepEqual(await readFile(cache), bad, 'the bad cache was replaced')
      const replaced = await cacheInode()
      assert.deepEqual(await load(), {value: 3})
      assert.equal(await cacheInode(), replaced, 'the new cache is used as it is')
    }
  })

  test('a process whose argv the bundle hands to oclif writes no cache; one that runs the command does', async () => {
    // A bundle shaped as the fast runner: runFast answers true for a command it runs, false for oclif's.
    await rm(cache, {force: true})
    await writeFile(bundle, `// dfs client bundle sha256:${'e'.repeat(64)}\nmodule.exports = {runFast: async ([id]) => id === 'run'}\n`)
    const script = join(work, 'run.mjs')
    await writeFile(
      script,
      `const {loadFastRunner} = await import(${JSON.stringify(LOADER)})\nconst {runFast} = await loadFastRunner(undefined, ${JSON.stringify(bundle)}, ${JSON.stringify(cache)})\nconsole.log(await runFast(process.argv.slice(2)))\n`,
    )
    const run = async (argv: string[]): Promise<string> => (await promisify(execFile)(process.execPath, [script, ...argv], {env: {...process.env, NODE_OPTIONS: ''}})).stdout.trim()
    assert.equal(await run(['help']), 'false')
    await assert.rejects(stat(cache), {code: 'ENOENT'}, 'a --help (or an argv error) leaves no cache of the parser alone')
    assert.equal(await run(['run']), 'true')
    const written = await cacheInode()
    assert.equal(await run(['help']), 'false')
    assert.equal(await cacheInode(), written, 'and leaves the cache a command wrote as it is')
  })
})
