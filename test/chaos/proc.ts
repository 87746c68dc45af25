// Running the dfs CLI from the chaos run: like helpers/cluster.ts's dfs(), plus a deadline, so a
// command that hangs is found (and killed) instead of hanging the whole run.

import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'

import {BIN} from '../helpers/cluster.js'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
  /** The command outlived its deadline and was killed. */
  hung: boolean
}

const running = new Set<ChildProcess>()

/** Runs `dfs <args>` to completion, killing it after `timeoutMs`. */
export async function runDfs(args: string[], timeoutMs: number): Promise<CliResult> {
  const started = Date.now()
  const child = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe']})
  running.add(child)
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk))
  let hung = false
  const timer = setTimeout(() => {
    hung = true
    child.kill('SIGKILL')
  }, timeoutMs)
  try {
    const [code] = (await once(child, 'close')) as [number | null]
    return {code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), ms: Date.now() - started, hung}
  } finally {
    clearTimeout(timer)
    running.delete(child)
  }
}

/** Kills every CLI command still running (on the way out). */
export function killRunningCommands(): void {
  for (const child of running) child.kill('SIGKILL')
}

/**
 * Whether a failed command said why in the way dfs promises: exactly one non-empty line on stderr,
 * starting with "Error: " (no stack trace, no wrapped lines, not silence).
 */
export function isClearError(stderr: string): boolean {
  const lines = stderr.split('\n').filter((line) => line.trim().length > 0)
  return lines.length === 1 && /^Error: \S/.test(lines[0]!)
}

/** The error line of a failed command, for reports. */
export function errorLine(result: CliResult): string {
  if (result.hung) return `(hung: killed after ${result.ms} ms)`
  const line = result.stderr.split('\n').find((candidate) => candidate.trim().length > 0)
  return line ? line.trim() : `(exit ${result.code} with nothing on stderr)`
}

/**
 * An error message with the parts that vary (names, ids, URLs, numbers) replaced, so that the
 * same failure counts once in the summary.
 */
export function normalizeError(message: string): string {
  return message
    .replace(/"[^"]*"/g, '"…"')
    .replace(/https?:\/\/[^\s)(;,]+/g, 'URL')
    .replace(/\bk[A-Za-z0-9_-]{6}\b/g, 'KEEPER')
    .replace(/\b[0-9a-f]{64}\b/g, 'SHA')
    .replace(/\b\d+(\.\d+)?\b/g, 'N')
    .slice(0, 200)
}
