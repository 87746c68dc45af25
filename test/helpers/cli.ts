// The dfs CLI run to its end the way a user runs it, for the tests (dfs() in cluster.ts) and the
// chaos run: with a deadline, so that a command that hangs is killed and reported instead of
// hanging the run, and in the launcher's registry, so that it is killed if the test process ends first.

import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'

import {DFS_BIN, trackChild} from '../../src/roles/cluster/node-process.js'
import {installCleanup} from './cleanup.js'

/** Long enough for a large get on a loaded machine; only a guard against hangs. */
export const CLI_TIMEOUT_MS = 120_000

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
  /** The command outlived its deadline and was killed. */
  hung: boolean
}

export interface CliOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv
  /** What the command reads on stdin; nothing by default. */
  stdin?: string
  timeoutMs?: number
  /** A command that runs node for us, e.g. ['ip', 'netns', 'exec', NS]: the client then runs in that network namespace. */
  prefix?: string[]
}

const running = new Set<ChildProcess>()

/** Runs `dfs <args>` to completion, killing it (SIGKILL) after the deadline. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  installCleanup()
  const started = Date.now()
  const [command, ...commandArgs] = [...(options.prefix ?? []), process.execPath, DFS_BIN, ...args]
  const child = spawn(command!, commandArgs, {env: {...process.env, ...options.env}, stdio: ['pipe', 'pipe', 'pipe']})
  trackChild(child)
  running.add(child)
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  // A command that exits without reading its stdin must not fail the run with EPIPE.
  child.stdin.on('error', () => {})
  child.stdin.end(options.stdin ?? '')
  let late = false
  const timer = setTimeout(() => {
    late = true
    child.kill('SIGKILL')
  }, options.timeoutMs ?? CLI_TIMEOUT_MS)
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
    // Hung: our kill ended it, not a command that finished just as the deadline came.
    const hung = late && signal === 'SIGKILL'
    return {code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), ms: Date.now() - started, hung}
  } finally {
    clearTimeout(timer)
    running.delete(child)
  }
}

/** Kills every CLI command still running (on the way out of the chaos run). */
export function killRunningCommands(): void {
  for (const child of running) child.kill('SIGKILL')
}
