import {Command, Flags} from '@oclif/core'

import {resolveMasterUrl} from './config.js'
import {DfsError, type ErrorCode} from './errors.js'
import type {Peer} from './peer-client.js'

/** The exit code of a command given several names when not every one succeeded (each file's report says why). */
export const SOME_FAILED_EXIT = 10

/** What a command did with one of the names (or files) it was given: its result, or the error that stopped it. */
export type Outcome<T> = {ok: true; result: T} | {ok: false; error: DfsError}

/**
 * The base of every dfs command: any failure ends as one line on stderr and a non-zero exit
 * code picked from the error catalogue, never a stack trace; with --json, as a JSON error object
 * (`{"error": code, "message": text}`) on stdout.
 */
export abstract class DfsCommand extends Command {
  protected override async catch(error: Error & {exitCode?: number; code?: string; oclif?: {exit?: number}}): Promise<unknown> {
    // this.exit() and this.fail() end a command by throwing oclif's ExitError: already reported.
    if (error.code === 'EEXIT') return super.catch(error)
    if (error instanceof DfsError) return this.fail(error.message, error.exitCode, error.code)
    // oclif's parse errors (unknown flag, missing argument, a flag value its parser refused) are
    // multi-line and end with a hint; they are all bad input: exit 2.
    if (error.oclif || error.message?.startsWith('Parsing --')) {
      return this.fail(`${flagError(error.message)} (see ${this.config.bin} ${(this.id ?? '').replaceAll(':', ' ')} --help)`, 2)
    }
    return this.fail(error.message || String(error), 1)
  }

  /**
   * Ends the command with one unwrapped line on stderr (oclif's own errors wrap at 80 columns),
   * or with --json the catalogue's error object on stdout (stderr when stdout carries a file).
   */
  protected fail(message: string, exit: number, code: ErrorCode = exit === 2 ? 'DFS_ERR_BAD_REQUEST' : 'DFS_ERR_INTERNAL'): never {
    const line = message.trim().replaceAll(/\s*\n\s*/g, ' ')
    if (this.wantsJson()) {
      const stream = this.stdoutCarriesBytes() ? process.stderr : process.stdout
      stream.write(`${JSON.stringify({error: code, message: line})}\n`)
    } else process.stderr.write(`Error: ${line}\n`)
    return this.exit(exit)
  }

  /** --json was asked for; known before the flags are parsed, so that a parse error is reported as JSON too. */
  protected wantsJson(): boolean {
    const end = this.argv.indexOf('--')
    return (end === -1 ? this.argv : this.argv.slice(0, end)).includes('--json') && Object.hasOwn(this.ctor.flags ?? {}, 'json')
  }

  /** stdout carries a file's bytes (`get -o -`, `cat`): JSON reports then go to stderr. */
  protected stdoutCarriesBytes(): boolean {
    return false
  }

  /**
   * Reports what a command did with each of several names: with --json one array of entries in
   * the order given (a failure's entry carries `error` and `message`), else a line per success on
   * stdout and per failure on stderr. Exits non-zero if any failed: with one name, its error's
   * code; with several, SOME_FAILED_EXIT.
   */
  protected reportEach<T>(
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
      if (this.stdoutCarriesBytes()) this.logToStderr(text)
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
  protected async master(flags: {master?: string; token?: string; ca?: string}): Promise<Peer> {
    // Loaded here, not at the top: `dfs --help` and friends need no HTTP client.
    const {Peer, connectionPool} = await import('./peer-client.js')
    const {knownToken} = await import('./known-clusters.js')
    const {loadCertificateAuthority} = await import('./tls.js')
    const baseUrl = resolveMasterUrl(flags.master)
    const bearer = flags.token?.trim() || (await knownToken(baseUrl))
    const authorization = bearer ? {authorization: `Bearer ${bearer}`} : undefined
    const agent = flags.ca === undefined ? undefined : connectionPool(await loadCertificateAuthority(flags.ca))
    return new Peer({role: 'master', baseUrl, credentials: authorization && (() => authorization), agent})
  }

  /** Prints a value as JSON for scripts. */
  protected printJson(value: unknown): void {
    this.log(JSON.stringify(value, null, 2))
  }
}

export const masterFlag = Flags.string({
  description: 'URL of the master [default: $DFS_MASTER, else http://127.0.0.1:7700]',
  helpValue: 'URL',
})

export const tokenFlag = Flags.string({
  description: 'client token, from dfs token create; without one, the token dfs cluster up recorded for this master',
  env: 'DFS_TOKEN',
  helpValue: 'TOKEN',
})

export const caFlag = Flags.string({
  description: "the certificate of the authority that signed the cluster's TLS certificates, for https URLs (dfs cluster up --tls makes DIR/tls/ca.pem)",
  env: 'DFS_CA',
  helpValue: 'FILE',
})

export const tlsCertFlag = Flags.string({
  description: 'serve https with this PEM certificate (its chain may follow it in the file); needs --tls-key',
  env: 'DFS_TLS_CERT',
  helpValue: 'FILE',
})

export const tlsKeyFlag = Flags.string({
  description: 'the PEM private key of --tls-cert; refused unless mode 0600',
  env: 'DFS_TLS_KEY',
  helpValue: 'FILE',
})

export const secretFileFlag = Flags.string({
  description: "the cluster's key file, shared by the master and every keeper (make one with: dfs secret create FILE)",
  env: 'DFS_SECRET_FILE',
  helpValue: 'FILE',
})

export const insecureFlag = Flags.boolean({
  description: 'allow listening on an address other than loopback without --secret-file: anyone who reaches it can read, write and delete every file',
  default: false,
})

export const metricsPublicFlag = Flags.boolean({
  description: 'serve GET /metrics without a client token even with --secret-file (counts and sizes, no file names), for a Prometheus that scrapes without credentials',
  default: false,
})

export const jsonFlag = Flags.boolean({description: 'print JSON for scripts instead of a table', default: false})

export const quietFlag = Flags.boolean({char: 'q', description: 'no progress bars (they are drawn on stderr only when stdout and stderr are both terminals)', default: false})

/** A duration flag: "500ms", "2s", "1m", "30d", or a plain number of seconds. Parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  helpValue: 'DURATION',
  async parse(input) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(input.trim())
    if (!match) throw new Error(`"${input}" is not a duration: use 500ms, 2s, 1m, 1h, 30d or a number of seconds`)
    const value = Number(match[1])
    const ms = value * {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}[(match[2] ?? "s") as "ms" | "s" | "m" | "h" | "d"]
    if (ms <= 0) throw new Error(`a duration must be more than zero, not "${input}"`)
    return Math.round(ms)
  },
})

/** A duration flag with a default shown the way people write it. */
export function duration(description: string, defaultMs: number) {
  return durationFlag({description, default: defaultMs, defaultHelp: async () => formatDuration(defaultMs)})
}

/** A duration the way people write it: 30d, 1h, 10s, 500ms. */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** A byte-size flag: "4MiB", "512k", "1G" or a plain number of bytes. */
export const sizeFlag = Flags.custom<number>({
  helpValue: 'SIZE',
  async parse(input) {
    const match = /^(\d+)\s*([kmg]?)(i?b)?$/i.exec(input.trim())
    if (!match) throw new Error(`"${input}" is not a size: use 4MiB, 512k or a number of bytes`)
    const unit = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3}[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
    const bytes = Number(match[1]) * unit
    if (bytes <= 0) throw new Error(`a size must be more than zero, not "${input}"`)
    return bytes
  },
})

export const logLevelFlag = Flags.string({
  description: 'log level of the server (logs go to stderr as JSON lines)',
  options: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  default: 'info',
})

/** Formats rows as a plain aligned text table, for people. */
export function formatTable(rows: Array<Record<string, string | number | boolean>>, columns: string[]): string {
  return new PagedTable(columns).format(rows)
}

/**
 * A table whose rows come a page at a time (dfs ls of 100,000 files prints as pages arrive): the
 * header with the first page, and each column as wide as its widest cell so far, so a later page
 * may widen a column, never narrow it.
 */
export class PagedTable {
  #widths: number[] | undefined

  constructor(readonly columns: string[]) {}

  /** The lines of one page, without a trailing newline; the header comes with the first. */
  format(rows: Array<Record<string, string | number | boolean>>): string {
    const header = this.#widths === undefined ? [this.columns.map((column) => column.toUpperCase())] : []
    const cells = [...header, ...rows.map((row) => this.columns.map((column) => String(row[column] ?? '')))]
    const widths = this.columns.map((_, index) => Math.max(this.#widths?.[index] ?? 0, ...cells.map((line) => line[index]!.length)))
    this.#widths = widths
    return cells.map((line) => line.map((cell, index) => cell.padEnd(widths[index]!)).join('  ').trimEnd()).join('\n')
  }
}

/** A name cut in the middle with … to fit `width` characters. */
export function shorten(name: string, width: number): string {
  const chars = [...name]
  if (chars.length <= width) return name
  const head = Math.ceil((width - 1) / 2)
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (width - 1 - head)).join('')}`
}

/**
 * A name as a table shows it: on a terminal cut in the middle past 48 characters, so that a long one
 * does not push the other columns out of view; whole anywhere else (a pipe, a file), where it is data.
 */
export function nameCell(name: string): string {
  return process.stdout.isTTY ? shorten(name, 48) : name
}

/** Bytes for people: 1.5 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

/** An oclif parse error as one line: "Parsing --range-size \n\t"abc" is not a size…\nSee more help with --help" → "--range-size: "abc" is not a size…". */
function flagError(message: string): string {
  return message
    .replace(/\s*See more help with --help\s*$/, '')
    .replace(/^Parsing (--[\w-]+)\s*/, '$1: ')
    .trim()
    .replaceAll(/\s+/g, ' ')
}

/** How long ago a moment was, for people: "12s ago", "5m ago", "3h ago", "2d ago"; "never" for none. */
export function formatAge(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never'
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (seconds < 120) return `${seconds}s ago`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`
  return `${Math.round(seconds / 86_400)}d ago`
}
