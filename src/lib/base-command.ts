import {Args, Command, Flags, type Interfaces} from '@oclif/core'

import {CommandIo} from '../cli/command-io.js'
import {
  type ArgSpec,
  type CommandSpec,
  type FlagSpec,
  type Parsed,
  caSpec,
  jsonSpec,
  logLevelSpec,
  masterSpec,
  parseDuration,
  tokenSpec,
} from '../cli/flag-spec.js'
import {DfsError, type ErrorCode} from './errors.js'
import type {Peer} from './peer-client.js'

export {SOME_FAILED_EXIT, type Outcome} from '../cli/command-io.js'
export {formatDuration} from '../cli/flag-spec.js'
export {PagedTable, formatAge, formatBytes, formatTable, nameCell, shorten} from '../cli/human-format.js'

/**
 * The base of every dfs command: any failure ends as one line on stderr and a non-zero exit
 * code picked from the error catalogue, never a stack trace; with --json, as a JSON error object
 * (`{"error": code, "message": text}`) on stdout. How it reports is CommandIo's, shared with the
 * fast runner (src/cli/fast-runner.ts).
 */
export abstract class DfsCommand extends Command {
  #io: CommandIo | undefined

  /** This command's output as the work shared with the fast runner takes it. */
  protected get io(): CommandIo {
    this.#io ??= new CommandIo({
      log: (text) => this.log(text),
      logToStderr: (text) => this.logToStderr(text),
      exit: (code) => this.exit(code),
      wantsJson: () => this.wantsJson(),
      stdoutCarriesBytes: () => this.stdoutCarriesBytes(),
    })
    return this.#io
  }

  protected override async catch(error: Error & {exitCode?: number; code?: string; oclif?: {exit?: number}}): Promise<unknown> {
    // this.exit() and this.fail() end a command by throwing oclif's ExitError: already reported.
    if (error.code === 'EEXIT') return super.catch(error)
    if (error instanceof DfsError) return this.io.failWith(error)
    // oclif's parse errors (unknown flag, missing argument, a flag value its parser refused) are
    // multi-line and end with a hint; they are all bad input: exit 2.
    if (error.oclif || error.message?.startsWith('Parsing --')) {
      return this.fail(`${flagError(error.message)} (see ${this.config.bin} ${(this.id ?? '').replaceAll(':', ' ')} --help)`, 2)
    }
    return this.io.failWith(error)
  }

  /** Parses argv against a command spec (src/cli), typed as the fast runner's parse of it is. */
  protected async parseSpec<S extends CommandSpec>(_spec: S): Promise<Parsed<S>> {
    const {args, argv, flags} = await this.parse(this.ctor)
    return {args, argv, flags} as unknown as Parsed<S>
  }

  /**
   * Ends the command with one unwrapped line on stderr (oclif's own errors wrap at 80 columns),
   * or with --json the catalogue's error object on stdout (stderr when stdout carries a file).
   */
  protected fail(message: string, exit: number, code?: ErrorCode): never {
    return this.io.fail(message, exit, code)
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

  /** See CommandIo.reportEach. */
  protected reportEach: CommandIo['reportEach'] = (outcomes, options) => this.io.reportEach(outcomes, options)

  /** See CommandIo.master. */
  protected async master(flags: {master?: string; token?: string; ca?: string}): Promise<Peer> {
    return this.io.master(flags)
  }

  /** Prints a value as JSON for scripts. */
  protected printJson(value: unknown): void {
    this.io.printJson(value)
  }
}

/** A spec's properties as oclif's flag builders take them. */
function props<S extends FlagSpec>({type: _, char, ...rest}: S) {
  return {...rest, char: char as Interfaces.AlphabetLowercase | undefined}
}

/** oclif's flag for a spec of src/cli/flag-spec.ts. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- typed by parseSpec, from the spec
export function oclifFlag(spec: FlagSpec): Interfaces.Flag<any> {
  switch (spec.type) {
    case 'boolean':
      return Flags.boolean(props(spec))
    case 'string':
      return Flags.string({...props(spec), options: spec.options && [...spec.options]})
    case 'integer':
      return Flags.integer(props(spec))
    case 'custom': {
      const {parse, defaultHelp, ...rest} = props(spec)
      return Flags.custom<unknown>({
        ...rest,
        defaultHelp: defaultHelp === undefined ? undefined : async () => defaultHelp,
        async parse(input) {
          return parse(input)
        },
      })()
    }
  }
}

/** oclif's flags for a spec's flags. */
export function oclifFlags(specs: Record<string, FlagSpec>): Interfaces.FlagInput {
  return Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, oclifFlag(spec)]))
}

/** oclif's arguments for a spec's arguments. */
export function oclifArgs(specs: Record<string, ArgSpec>) {
  return Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, Args.string({...spec})]))
}

export const masterFlag = Flags.string(props(masterSpec))
export const tokenFlag = Flags.string(props(tokenSpec))
export const caFlag = Flags.string(props(caSpec))
export const jsonFlag = Flags.boolean(props(jsonSpec))
export const logLevelFlag = Flags.string({...props(logLevelSpec), options: [...logLevelSpec.options]})

/** A duration flag: "500ms", "2s", "1m", "30d", or a plain number of seconds. Parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  helpValue: 'DURATION',
  async parse(input) {
    return parseDuration(input)
  },
})

/** An oclif parse error as one line: "Parsing --range-size \n\t"abc" is not a size…\nSee more help with --help" → "--range-size: "abc" is not a size…". */
function flagError(message: string): string {
  return message
    .replace(/\s*See more help with --help\s*$/, '')
    .replace(/^Parsing (--[\w-]+)\s*/, '$1: ')
    .trim()
    .replaceAll(/\s+/g, ' ')
}
