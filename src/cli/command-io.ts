import {resolveMasterUrl} from '../lib/config.js'
import {DfsError, type ErrorCode} from '../lib/errors.js'
import type {Peer} from '../lib/peer-client.js'

/** The exit code of a command given several names when not every one succeeded (each file's report says why). */
export const SOME_FAILED_EXIT = 10

/** What a command did with one of the names (or files) it was given: its result, or the error that stopped it. */
export type Outcome<T> = {ok: true; result: T} | {ok: false; error: DfsError}

/** Where a command's lines go and how it ends early: oclif's Command, or the fast runner's console. */
export interface CommandOutput {
  log(text?: string): void
  logToStderr(text?: string): void
  /** Ends the command with this exit code (it throws). */
  exit(code: number): never
  /** --json was asked for: errors are reported as JSON. */
  wantsJson(): boolean
  /** stdout carries a file's bytes (`get -o -`, `cat`): JSON reports then go to stderr. */
  stdoutCarriesBytes(): boolean
}

/**
 * How every dfs command reports, under oclif or the fast runner alike: any failure ends as one
 * line on stderr and a non-zero exit code picked from the error catalogue, never a stack trace;
 * with --json, as a JSON error object (`{"error": code, "message": text}`) on stdout.
 */
export class CommandIo {
  constructor(readonly output: CommandOutput) {}

  log(text?: string): void {
    this.output.log(text)
  }

  logToStderr(text?: string): void {
    this.output.logToStderr(text)
  }

  exit(code: number): never {
    return this.output.exit(code)
  }

  /** Prints a value as JSON for scripts. */
  printJson(value: unknown): void {
    this.log(JSON.stringify(value, null, 2))
  }

  /** Reports an error the command's work threw (not a parse error: each parser reports its own). */
  failWith(error: Error): never {
    if (error instanceof DfsError) return this.fail(error.message, error.exitCode, error.code)
    return this.fail(error.message || String(error), 1)
  }

  /**
   * Ends the command with one unwrapped line on stderr (oclif's own errors wrap at 80 columns),
   * or with --json the catalogue's error object on stdout (stderr when stdout carries a file).
   */
  fail(message: string, exit: number, code: ErrorCode = exit === 2 ? 'DFS_ERR_BAD_REQUEST' : 'DFS_ERR_INTERNAL'): never {
    const line = message.trim().replaceAll(/\s*\n\s*/g, ' ')
    if (this.output.wantsJson()) {
      const stream = this.output.stdoutCarriesBytes() ? process.stderr : process.stdout
      stream.write(`${JSON.stringify({error: code, message: line})}\n`)
    } else process.stderr.write(`Error: ${line}\n`)
    return this.exit(exit)
  }

  /**
   * Reports what a command did with each of several names: with --json one array of entries in
   * the order given (a failure's entry carries `error` and `message`), else a line per success on
   * stdout and per failure on stderr. Exits non-zero if any failed: with one name, its error's
   * code; with several, SOME_FAILED_EXIT.
   */
  reportEach<T>(
    outcomes: Array<Outcome<T>>,
    options: {
      json: boolean
      /** What names one outcome in its entry and failure line, e.g. {path} or {name}. */
      subject: (index: number) => Record<string, string>
      /** The JSON entry of a success. */
      entry: (result: T) => object
      /** The line a person reads for a success; undefined: none. */
      line: (result: T) => string | undefined
      /** What was done, plural, for the closing error: "uploads". */
      what: string
    },
  ): void {
    const failed = outcomes.flatMap((outcome, index) => (outcome.ok ? [] : [{index, error: outcome.error}]))
    if (options.json) {
      const entries = outcomes.map((outcome, index) => (outcome.ok ? {...options.subject(index), ...options.entry(outcome.result)} : {...options.subject(index), ...outcome.error.toJSON()}))
      const text = JSON.stringify(entries, null, 2)
      if (this.output.stdoutCarriesBytes()) this.logToStderr(text)
      else this.log(text)
    } else {
      for (const outcome of outcomes) {
        const line = outcome.ok ? options.line(outcome.result) : undefined
        if (line !== undefined) this.log(line)
      }
    }

    if (failed.length === 0) return
    if (outcomes.length === 1) {
      if (options.json) return this.exit(failed[0]!.error.exitCode)
      return this.fail(failed[0]!.error.message, failed[0]!.error.exitCode, failed[0]!.error.code)
    }

    if (options.json) return this.exit(SOME_FAILED_EXIT)
    for (const {index, error} of failed) this.logToStderr(`failed ${Object.values(options.subject(index))[0]}: ${error.message.trim().replaceAll(/\s*\n\s*/g, ' ')}`)
    this.fail(`${failed.length} of ${outcomes.length} ${options.what} failed`, SOME_FAILED_EXIT)
  }

  /**
   * The master a client command talks to: `--master`, else `DFS_MASTER`, else the local default;
   * with the token of `--token` (or `DFS_TOKEN`), else the one `dfs cluster up` recorded for that
   * master (see known-clusters.ts), else none; over connections that trust `--ca` (else `DFS_CA`,
   * else the system's authorities).
   */
  async master(flags: {master?: string; token?: string; ca?: string}): Promise<Peer> {
    // Loaded here, not at the top: `dfs --help` and friends need no HTTP client.
    const {Peer, connectionPool} = await import('../lib/peer-client.js')
    const {knownToken} = await import('../lib/known-clusters.js')
    const baseUrl = resolveMasterUrl(flags.master)
    const bearer = flags.token?.trim() || (await knownToken(baseUrl))
    const authorization = bearer ? {authorization: `Bearer ${bearer}`} : undefined
    // tls.ts loads node:tls and node:crypto: only for --ca.
    const agent = flags.ca === undefined ? undefined : connectionPool(await (await import('../lib/tls.js')).loadCertificateAuthority(flags.ca))
    return new Peer({role: 'master', baseUrl, credentials: authorization && (() => authorization), agent})
  }
}
