/**
 * The flags and arguments of the commands run hot (ls, stat, get, put, rm, cat, master, keeper),
 * written once without @oclif/core: base-command.ts makes oclif's flags of them (help, README,
 * manifest and every parse error), and fast-argv.ts parses the invocations it can parse exactly
 * without loading oclif (~0.2 s of every command's start).
 */

interface CommonSpec {
  description: string
  char?: string
  helpValue?: string
  hidden?: boolean
}

export interface BooleanSpec extends CommonSpec {
  type: 'boolean'
  default: boolean
}

export interface StringSpec extends CommonSpec {
  type: 'string'
  env?: string
  default?: string
  options?: readonly string[]
}

export interface IntegerSpec extends CommonSpec {
  type: 'integer'
  env?: string
  default?: number
  min?: number
  max?: number
}

/** A value with its own parse (a duration, a size): it throws an Error whose message is the one-line complaint. */
export interface CustomSpec<T> extends CommonSpec {
  type: 'custom'
  env?: string
  default?: T
  /** The default as people write it in --help. */
  defaultHelp?: string
  parse(input: string): T
}

export type FlagSpec = BooleanSpec | StringSpec | IntegerSpec | CustomSpec<unknown>

export interface ArgSpec {
  description: string
  required: boolean
  /**
   * oclif reads a missing argument from a piped stdin for 10 ms: racy, and a pause on every
   * `dfs ls` whose stdin is a pipe. An optional argument of a fast command never does.
   */
  ignoreStdin?: boolean
}

export interface CommandSpec {
  flags: Record<string, FlagSpec>
  args: Record<string, ArgSpec>
  /** false: every argument after the declared ones is taken too (argv). */
  strict: boolean
}

type ValueOf<S> = S extends BooleanSpec ? boolean : S extends IntegerSpec ? number : S extends CustomSpec<infer T> ? T : string
type FlagValues<F> = {[K in keyof F]: ValueOf<F[K]> | (F[K] extends {default: unknown} ? never : undefined)}
type ArgValues<A> = {[K in keyof A]: A[K] extends {required: true} ? string : string | undefined}

/** What parsing an invocation of a command gives, by either parser. */
export interface Parsed<S extends CommandSpec> {
  flags: FlagValues<S['flags']>
  args: ArgValues<S['args']>
  /** Every argument, in order (the declared ones first). */
  argv: string[]
}

// Builders keep each spec's literal shape, so that a flag with a default types as never undefined.
export const flag = {
  boolean: <S extends Omit<BooleanSpec, 'type'>>(spec: S) => ({type: 'boolean', ...spec}) as S & {type: 'boolean'},
  string: <S extends Omit<StringSpec, 'type'>>(spec: S) => ({type: 'string', ...spec}) as S & {type: 'string'},
  integer: <S extends Omit<IntegerSpec, 'type'>>(spec: S) => ({type: 'integer', ...spec}) as S & {type: 'integer'},
  custom: <T, S extends Omit<CustomSpec<T>, 'type'>>(spec: S & {parse(input: string): T}) => ({type: 'custom', ...spec}) as S & {type: 'custom'; parse(input: string): T},
}

/** A duration: "500ms", "2s", "1m", "30d", or a plain number of seconds; in milliseconds. */
export function parseDuration(input: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(input.trim())
  if (!match) throw new Error(`"${input}" is not a duration: use 500ms, 2s, 1m, 1h, 30d or a number of seconds`)
  const value = Number(match[1])
  const ms = value * {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd']
  if (ms <= 0) throw new Error(`a duration must be more than zero, not "${input}"`)
  return Math.round(ms)
}

/** A duration the way people write it: 30d, 1h, 10s, 500ms. */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** A byte size: "4MiB", "512k", "1G" or a plain number of bytes. */
export function parseSize(input: string): number {
  const match = /^(\d+)\s*([kmg]?)(i?b)?$/i.exec(input.trim())
  if (!match) throw new Error(`"${input}" is not a size: use 4MiB, 512k or a number of bytes`)
  const unit = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3}[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
  const bytes = Number(match[1]) * unit
  if (bytes <= 0) throw new Error(`a size must be more than zero, not "${input}"`)
  return bytes
}

/** A duration flag with a default shown the way people write it. */
export function durationSpec(description: string, defaultMs: number) {
  return flag.custom({description, helpValue: 'DURATION', default: defaultMs, defaultHelp: formatDuration(defaultMs), parse: parseDuration})
}

/** A size flag: "4MiB", "512k", "1G" or a number of bytes. */
export function sizeSpec(description: string, defaultBytes: number, defaultHelp: string) {
  return flag.custom({description, helpValue: 'SIZE', default: defaultBytes, defaultHelp, parse: parseSize})
}

export const masterSpec = flag.string({
  description: 'URL of the master [default: $DFS_MASTER, else http://127.0.0.1:7700]',
  helpValue: 'URL',
})

export const tokenSpec = flag.string({
  description: 'client token, from dfs token create; without one, the token dfs cluster up recorded for this master',
  env: 'DFS_TOKEN',
  helpValue: 'TOKEN',
})

export const caSpec = flag.string({
  description: "the certificate of the authority that signed the cluster's TLS certificates, for https URLs (dfs cluster up --tls makes DIR/tls/ca.pem)",
  env: 'DFS_CA',
  helpValue: 'FILE',
})

export const tlsCertSpec = flag.string({
  description: 'serve https with this PEM certificate (its chain may follow it in the file); needs --tls-key',
  env: 'DFS_TLS_CERT',
  helpValue: 'FILE',
})

export const tlsKeySpec = flag.string({
  description: 'the PEM private key of --tls-cert; refused unless mode 0600',
  env: 'DFS_TLS_KEY',
  helpValue: 'FILE',
})

export const secretFileSpec = flag.string({
  description: "the cluster's key file, shared by the master and every keeper (make one with: dfs secret create FILE)",
  env: 'DFS_SECRET_FILE',
  helpValue: 'FILE',
})

export const insecureSpec = flag.boolean({
  description: 'allow listening on an address other than loopback without --secret-file: anyone who reaches it can read, write and delete every file',
  default: false,
})

export const metricsPublicSpec = flag.boolean({
  description: 'serve GET /metrics without a client token even with --secret-file (counts and sizes, no file names), for a Prometheus that scrapes without credentials',
  default: false,
})

export const jsonSpec = flag.boolean({description: 'print JSON for scripts instead of a table', default: false})

export const quietSpec = flag.boolean({char: 'q', description: 'no progress bars (they are drawn on stderr only when stdout and stderr are both terminals)', default: false})

export const logLevelSpec = flag.string({
  description: 'log level of the server (logs go to stderr as JSON lines)',
  options: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  default: 'info',
})

/** The flags every client command takes: where the master is and how to talk to it. */
export const clientSpecs = {master: masterSpec, token: tokenSpec, ca: caSpec}
