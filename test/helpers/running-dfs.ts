// The dfs CLI started and left running, for tests that act while a command is under way (kill a
// keeper mid-transfer, add keepers while put waits) and then look at how it ended.

import {spawn, type ChildProcessByStdio} from 'node:child_process'
import {once} from 'node:events'
import type {Readable} from 'node:stream'

import {BIN, waitFor, type RunResult} from './cluster.js'

export interface RunningDfs {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** Resolves when the command has ended, with everything it printed (stdout only if not read by the test). */
  done: Promise<RunResult>
  exited(): boolean
}

/**
 * Starts `dfs <args>`. With `readStdout` the test reads the child's stdout itself (and controls
 * its pace); `done` then carries an empty stdout. With `prefix` (['ip', 'netns', 'exec', NS]) it
 * runs in that network namespace.
 */
export function startDfs(args: string[], options: {readStdout?: boolean; prefix?: string[]} = {}): RunningDfs {
  const [command, ...commandArgs] = [...(options.prefix ?? []), process.execPath, BIN, ...args]
  const child = spawn(command!, commandArgs, {stdio: ['ignore', 'pipe', 'pipe']})
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  if (!options.readStdout) child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  let ended = false
  const done = once(child, 'close').then(([code]) => {
    ended = true
    return {code: code as number | null, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8')}
  })
  return {child, done, exited: () => ended}
}

/**
 * Waits for `check` while the command is still running, and fails at once if the command ends
 * first: for a state that must come about before the command may return.
 */
export async function whileRunning<T>(cli: RunningDfs, what: string, check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  let settled = false
  const ended = cli.done.then((result) => {
    if (!settled) throw new Error(`dfs ended (exit ${result.code}) before ${what}: ${result.stderr}${result.stdout}`)
  })
  ended.catch(() => {})
  const waited = waitFor(what, () => (settled ? true : check()))
  waited.catch(() => {})
  try {
    return (await Promise.race([waited, ended.then(() => waited)])) as T
  } finally {
    settled = true
  }
}
