// The fast runner (src/cli/fast-runner.ts) against a live cluster: the hot commands run without
// loading a single @oclif module, and print, report and exit exactly as the same command run
// through oclif does (DFS_FAST_RUNNER=0).

import assert from 'node:assert/strict'
import {readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, dfs, randomFile, tempDir} from './helpers/cluster.js'

// Preloaded into the dfs process: at its exit it writes how many @oclif modules it loaded (oclif
// is CommonJS, so every one it loads, even through import, is in require.cache), and which of
// Node's own modules.
const PROBE = `const {writeFileSync} = require('node:fs')
process.on('exit', () => {
  const oclif = Object.keys(require.cache).filter((file) => file.includes('/@oclif/')).length
  const builtins = process.moduleLoadList.filter((entry) => entry.startsWith('NativeModule ')).map((entry) => entry.slice('NativeModule '.length))
  writeFileSync(process.env.DFS_TEST_PROBE_OUT, JSON.stringify({oclif, builtins}))
})
`

describe('the fast runner', () => {
  let cluster: TestCluster
  let work: string
  let probe: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    work = await tempDir()
    probe = join(work, 'probe.cjs')
    await writeFile(probe, PROBE)
    await randomFile(join(work, 'a.bin'), 64 * 1024)
    const put = await cluster.dfs(['put', join(work, 'a.bin'), '--name', 'a.bin'])
    assert.equal(put.code, 0, put.stderr)
  })
  after(async () => {
    await cluster?.stop()
    if (work) await rm(work, {recursive: true, force: true})
  })

  /** Runs dfs ARGS against the cluster; with how many @oclif modules it loaded, and Node's own modules. */
  async function probed(args: string[], env: NodeJS.ProcessEnv = {}) {
    const out = join(work, 'probe.out')
    await rm(out, {force: true})
    const result = await dfs([...args, ...cluster.clientFlags], {env: {...env, NODE_OPTIONS: `--require ${probe}`, DFS_TEST_PROBE_OUT: out}})
    const {oclif, builtins} = JSON.parse(await readFile(out, 'utf8')) as {oclif: number; builtins: string[]}
    return {...result, oclifModules: oclif, builtins}
  }

  test('dfs ls, stat and cat against a live master load no @oclif module; an argv it does not model goes to oclif', async () => {
    const ls = await probed(['ls', '--json'])
    assert.equal(ls.code, 0, ls.stderr)
    assert.deepEqual(JSON.parse(ls.stdout).map((file: {name: string}) => file.name), ['a.bin'])
    assert.equal(ls.oclifModules, 0)
    const stat = await probed(['stat', 'a.bin'])
    assert.equal(stat.code, 0, stat.stderr)
    assert.match(stat.stdout, /^name: +a\.bin$/m)
    assert.equal(stat.oclifModules, 0)
    // Over plain http a client loads neither TLS nor crypto nor HTTP/2 (a third of Node's modules
    // it loaded): undici is bundled without HTTP/2, and tls.ts is loaded for --ca only.
    for (const {builtins} of [ls, stat]) assert.deepEqual(builtins.filter((name) => ['http2', 'tls', 'crypto'].includes(name)), [])
    // An unknown flag, and the same command with the fast runner off: oclif runs them (and the probe sees it).
    const unknown = await probed(['ls', '--bogus'])
    assert.equal(unknown.code, 2)
    assert.ok(unknown.oclifModules > 0)
    const off = await probed(['ls', '--json'], {DFS_FAST_RUNNER: '0'})
    assert.equal(off.stdout, ls.stdout)
    assert.ok(off.oclifModules > 0)
  })

  test('each hot command prints, reports and exits as it does through oclif', async () => {
    // Not stat --json of a stored file: its read grants carry the second they were minted.
    const invocations = [
      ['ls', '--json'],
      ['ls', 'nothing-here/'],
      ['stat', 'a.bin'],
      ['stat', 'missing'],
      ['stat', 'missing', '--json'],
      ['cat', 'missing'],
      ['get', 'missing', '-o', '-', '--json'],
      ['get', 'a.bin', 'b', '-o', '-'],
      ['get', 'a.bin', '--range-size', '1k'],
      ['put', join(work, 'a.bin'), '--name', 'a.bin'],
      ['put', join(work, 'a.bin'), '--name', 'a.bin', '--json'],
      ['put', join(work, 'a.bin'), '--wait', 'most'],
      ['rm', 'missing', 'also-missing'],
      ['rm', 'missing', 'also-missing', '--json'],
    ]
    for (const args of invocations) {
      const fast = await probed(args)
      const oclif = await probed(args, {DFS_FAST_RUNNER: '0'})
      assert.deepEqual({code: fast.code, stdout: fast.stdout, stderr: fast.stderr}, {code: oclif.code, stdout: oclif.stdout, stderr: oclif.stderr}, `dfs ${args.join(' ')}`)
      assert.equal(fast.oclifModules, 0, `dfs ${args.join(' ')} ran fast`)
      assert.ok(oclif.oclifModules > 0)
    }
  })
})
