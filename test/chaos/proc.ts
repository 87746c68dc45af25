// Running the dfs CLI from the chaos run: the tests' CLI runner (helpers/cli.ts), which has a
// deadline, so a command that hangs is found (and killed) instead of hanging the whole run.

import {runCli, type CliResult} from '../helpers/cli.js'

export {killRunningCommands, type CliResult} from '../helpers/cli.js'

/** Runs `dfs <args>` to completion, killing it after `timeoutMs`. */
export function runDfs(args: string[], timeoutMs: number): Promise<CliResult> {
  return runCli(args, {timeoutMs})
}

/**
 * Whether a failed command said why in the way dfs promises: exactly one non-empty line on stderr,
 * starting with "Error: " (no stack trace, no wrapped lines, not silence).
 */
export function isClearError(result: Pick<CliResult, 'stderr' | 'stdout'>): boolean {
  const lines = result.stderr.split('\n').filter((line) => line.trim().length > 0)
  if (lines.length === 0) return jsonFailure(result.stdout) !== undefined
  return lines.length === 1 && /^Error: \S/.test(lines[0]!)
}

/**
 * The failure a `--json` command reported on stdout (the output contract: one JSON document, a
 * failed name's entry or the whole command's object carrying a catalogue `error` and a one-line
 * `message`), as the line a person reads; undefined if it reported none that way.
 */
function jsonFailure(stdout: string): string | undefined {
  let report: unknown
  try {
    report = JSON.parse(stdout)
  } catch {
    return undefined
  }

  const entries = (Array.isArray(report) ? report : [report]) as Array<{error?: unknown; message?: unknown}>
  const failed = entries.find((entry) => typeof entry?.error === 'string' && /^DFS_ERR_/.test(entry.error) && typeof entry.message === 'string')
  return failed && !(failed.message as string).includes('\n') ? `Error: ${failed.message as string}` : undefined
}

/** The error line of a failed command, for reports. */
export function errorLine(result: CliResult): string {
  if (result.hung) return `(hung: killed after ${result.ms} ms)`
  const line = result.stderr.split('\n').find((candidate) => candidate.trim().length > 0)
  return line ? line.trim() : (jsonFailure(result.stdout) ?? `(exit ${result.code} with nothing on stderr)`)
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
