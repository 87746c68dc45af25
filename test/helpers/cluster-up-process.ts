// `dfs cluster up` run as a user runs it, for tests of its start and stop: the process, what it
// printed, and the master and keepers its ready block names.

import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {isRunning, readClusterState} from '../../src/roles/cluster/local-cluster.js'
import {BIN, tempDir, waitFor} from './cluster.js'

export const FAST_FLAGS = ['--heartbeat-interval', '200ms', '--heartbeat-timeout', '1s', '--replication-interval', '1s']

export interface ClusterUp {
  child: ChildProcess
  dir: string
  output: () => string
  exit: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  masterUrl: string
  keepers: Array<{name: string; url: string; id: string}>
  /** Pids of the master and keepers, from cluster.json. */
  childPids: number[]
}

const started: ClusterUp[] = []
let configDir: string | undefined

/**
 * cluster up records its token for the CLI in the user's config dir (known-clusters.ts): in a test,
 * a temp dir of this process, which every command it runs afterwards inherits.
 */
export async function useTestConfigDir(): Promise<void> {
  configDir ??= await tempDir('dfs-config-')
  process.env.XDG_CONFIG_HOME = configDir
}

/** Starts `dfs cluster up` on `dir` and resolves once it printed its ready block. */
export async function clusterUp(dir: string, keepers: number, extra: string[] = []): Promise<ClusterUp> {
  await useTestConfigDir()
  const child = spawn(process.execPath, [BIN, 'cluster', 'up', '--keepers', String(keepers), '--port', '0', '--dir', dir, ...FAST_FLAGS, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')))
  const exit = once(child, 'exit').then(([code, signal]) => ({code: code as number | null, signal: signal as NodeJS.Signals | null}))
  const up: ClusterUp = {child, dir, output: () => output, exit, masterUrl: '', keepers: [], childPids: []}
  started.push(up)

  // The deadline only guards against a hang; the process exiting first fails at once.
  let exited = false
  void exit.then(() => (exited = true))
  const ready = await waitFor(`cluster up on ${dir} to print its ready block`, () => (exited ? 'exited' : output.includes('Press Ctrl-C to stop')))
  if (ready === 'exited') throw new Error(`cluster up exited before it was ready:\n${output}`)

  const masterUrl = /export DFS_MASTER=(\S+)/.exec(output)?.[1]
  assert.ok(masterUrl, `no master URL in:\n${output}`)
  up.masterUrl = masterUrl
  up.keepers = [...output.matchAll(/^ {2}(keeper-\d+)\s+(http\S+)\s+\((\S+)\)$/gm)].map((match) => ({name: match[1]!, url: match[2]!, id: match[3]!}))
  const state = await readClusterState(dir)
  assert.ok(state, 'cluster.json is written while the cluster runs')
  up.childPids = state.nodes.map((node) => node.pid).filter((pid): pid is number => pid !== undefined)
  assert.equal(up.childPids.length, keepers + 1)
  return up
}

/** The admin token cluster up wrote in `dir`. */
export async function clusterToken(dir: string): Promise<string> {
  return (await readFile(join(dir, 'token'), 'utf8')).trim()
}

/** For an `after` hook: whatever a test did, no cluster process nor any child of one is left. */
export async function killClustersLeft(): Promise<void> {
  for (const up of started.splice(0)) {
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL')
    for (const pid of up.childPids) if (isRunning(pid)) process.kill(pid, 'SIGKILL')
    const state = await readClusterState(up.dir)
    for (const node of state?.nodes ?? []) {
      if (node.pid !== undefined && isRunning(node.pid)) process.kill(node.pid, 'SIGKILL')
    }
  }
}
