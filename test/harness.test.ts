import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, readdir, readFile} from 'node:fs/promises'
import {createServer, type Socket} from 'node:net'
import {join} from 'node:path'
import {test} from 'node:test'

import {trackChild} from '../src/roles/cluster/node-process.js'
import {REPO, TestCluster, dfs, tempDir, waitFor} from './helpers/cluster.js'

// The harness itself: nothing a test process starts outlives it (servers, CLI runs, temp dirs),
// whether a test fails, TestCluster.start fails half-way, or the runner stops a file that hangs;
// and a failing test shows what its servers logged. The failing and hanging suites are in
// test/harness-fixtures/ and run in processes of their own.

const FIXTURES = join(REPO, 'dist', 'test', 'harness-fixtures')

/** The pids of this process's children, from /proc. */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // The command name (2nd field) is in parentheses and may hold spaces; the ppid follows the state.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === pid) children.push(Number(entry))
  }

  return children
}

/** Whether a process runs: it exists and is not a zombie waiting to be reaped. */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

/** The servers of a fixture, once its process has exited: SIGKILLed on its way out, they are gone a moment later. */
async function waitForGone(pids: number[]): Promise<void> {
  await waitFor('every server of the fixture to be gone', async () => {
    for (const pid of pids) if (await running(pid)) return false
    return true
  })
}

/** Runs a fixture with its own TMPDIR; returns its output, exit and the pids of the servers it recorded. */
async function runFixture(args: string[], options: {stopWhenReady?: NodeJS.Signals} = {}) {
  const work = await tempDir('dfs-harness-')
  const tmp = join(work, 'tmp')
  const pidsFile = join(work, 'pids')
  await mkdir(tmp)
  const env: NodeJS.ProcessEnv = {...process.env, TMPDIR: tmp, HARNESS_PIDS: pidsFile}
  // Else a nested `node --test` takes itself for a file under this runner and reports in its binary format.
  delete env.NODE_TEST_CONTEXT
  const child = spawn(process.execPath, args, {env, stdio: ['ignore', 'pipe', 'pipe']})
  trackChild(child)
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk))
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  try {
    if (options.stopWhenReady) {
      await waitFor('the fixture to start its cluster', async () => (await readFile(pidsFile, 'utf8').catch(() => '')).includes('ready'), 120_000)
      child.kill(options.stopWhenReady)
    }

    // Only a guard: a fixture whose servers were left running would never exit.
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
    const [code, signal] = await exited.finally(() => clearTimeout(timer))
    if (signal === 'SIGKILL') throw new Error(`the fixture did not exit within 180 s:\n${output}`)
    return {code, output, pids: await pidsOf(pidsFile), leftInTmp: await readdir(tmp)}
  } finally {
    // The fixture's own harness failed if anything is left: this one still cleans up after it.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const pid of await pidsOf(pidsFile)) {
      // Only a server of this fixture (its data dir is under the fixture's TMPDIR), not a pid reused since.
      const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      if (command.includes(tmp) && (await running(pid))) process.kill(pid, 'SIGKILL')
    }
  }
}

async function pidsOf(pidsFile: string): Promise<number[]> {
  return (await readFile(pidsFile, 'utf8').catch(() => '')).split('\n').filter((line) => /^\d+$/.test(line)).map(Number)
}

/** What the harness printed for a failed test: its stderr lines, which TAP shows as comments before the test's result. */
function logsOfFailedTest(output: string, name: string): string {
  const title = `# server logs of the failed test "${name}":`
  assert.ok(output.includes(title), `${title} in:\n${output}`)
  return output.slice(output.indexOf(title)).split(/\n *(?:# Subtest|ok|not ok) /)[0]!
}

test('TestCluster.start failing half-way stops what it started and removes its dir', async () => {
  const tmp = await tempDir('dfs-harness-')
  const saved = process.env.TMPDIR
  process.env.TMPDIR = tmp
  try {
    // The master starts; the keepers cannot (a flag they do not have), after it is up.
    await assert.rejects(TestCluster.start({keepers: 2, keeperArgs: ['--no-such-flag']}), /dfs keeper .* did not start/)
  } finally {
    // Assigning undefined would set the string "undefined" (CI runs without TMPDIR).
    if (saved === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = saved
  }

  assert.deepEqual(await childrenOf(process.pid), [], 'no master or keeper is left running')
  assert.deepEqual(await readdir(tmp), [], 'the cluster dir is removed')
})

test('a failing test prints its servers\' logs, and its process leaves no server or temp dir behind', async () => {
  const run = await runFixture(['--test', '--test-reporter=tap', join(FIXTURES, 'fails.test.js')])
  assert.notEqual(run.code, 0, run.output)
  assert.match(run.output, /# fail 2/, run.output)
  // Each failed test shows the servers that ran during it, with their lines: its own cluster, which
  // started during the test, from its first line on; and a shared cluster started before the test,
  // with its lines of the test, or what it said before if it said nothing during the test (on a
  // loaded machine it may have: a slow heartbeat is logged).
  const own = logsOfFailedTest(run.output, 'fails on purpose with a cluster running')
  assert.match(own, /--- master pid \d+ http:\/\/127\.0\.0\.1:\d+[^\n]*\n(?:# +[|-][^\n]*\n)*?# +\| dfs master listening on/, run.output)
  assert.match(own, /--- keeper \S+ pid \d+ [^\n]*\n(?:# +[|-][^\n]*\n)*?# +\| dfs keeper \S+ listening on/, run.output)
  const shared = logsOfFailedTest(run.output, 'fails on purpose too')
  assert.match(shared, /--- master pid \d+ http:\/\/127\.0\.0\.1:\d+[^\n]*\n(?:# +-[^\n]*\n)*# +\| \S/, run.output)
  assert.match(shared, /--- keeper \S+ pid \d+ [^\n]*\n(?:# +-[^\n]*\n)*# +\| \S/, run.output)

  // The shared cluster was never stopped: the harness kills it after the last test, and says so.
  assert.match(run.output, /after the last test of the file: killed 2 child processes still running/, run.output)
  assert.equal(run.pids.length, 4, 'two clusters of a master and a keeper')
  await waitForGone(run.pids)
  assert.deepEqual(run.leftInTmp, [], 'every temp dir is removed')
})

test('a test file stopped by SIGTERM, as the runner stops one that outlives --test-timeout, kills its servers and removes its dirs', async () => {
  const run = await runFixture([join(FIXTURES, 'hangs.test.js')], {stopWhenReady: 'SIGTERM'})
  assert.equal(run.code, 128 + 15, run.output)
  assert.match(run.output, /got SIGTERM/, run.output)
  assert.match(run.output, /--- master pid \d+ [^\n]*: its last lines\n(?: +\|[^\n]*\n)*? +\| dfs master listening on/, run.output)
  assert.equal(run.pids.length, 2)
  await waitForGone(run.pids)
  assert.deepEqual(run.leftInTmp, [], 'every temp dir is removed')
})

test('a CLI run that outlives its deadline is killed, and dfs() fails with what it printed', async () => {
  // A master that accepts connections and never answers: the CLI waits far longer than 2 s.
  const sockets: Socket[] = []
  const silent = createServer((socket) => sockets.push(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const {port} = silent.address() as {port: number}
  try {
    await assert.rejects(dfs(['ls', '--master', `http://127.0.0.1:${port}`], {timeoutMs: 2000}), /dfs ls --master \S+ did not finish within 2 s and was killed\n--- its stdout/)
    assert.deepEqual(await childrenOf(process.pid), [], 'the CLI process is gone')
  } finally {
    for (const socket of sockets) socket.destroy()
    silent.close()
  }
})
