import {CommandIo} from './command-io.js'
import {parseFast} from './fast-argv.js'
import type {CommandSpec, Parsed} from './flag-spec.js'

/** A command the fast runner runs: its spec, its work, and whether stdout carries a file's bytes. */
interface FastCommand<S extends CommandSpec> {
  spec: S
  run(io: CommandIo, parsed: Parsed<S>): Promise<void>
  stdoutCarriesBytes?(parsed: Parsed<S>): boolean
}

function command<S extends CommandSpec>(fast: FastCommand<S>): FastCommand<CommandSpec> {
  return fast as unknown as FastCommand<CommandSpec>
}

/** The commands run hot (by scripts, by the tests: ~600 client commands and ~440 servers a run). */
const FAST_COMMANDS: Record<string, () => Promise<FastCommand<CommandSpec>>> = {
  ls: async () => import('./ls.js').then(({lsSpec, runLs}) => command({spec: lsSpec, run: runLs})),
  stat: async () => import('./stat.js').then(({statSpec, runStat}) => command({spec: statSpec, run: runStat})),
  get: async () => import('./get.js').then(({getSpec, runGet}) => command({spec: getSpec, run: runGet, stdoutCarriesBytes: ({flags}) => flags.output === '-'})),
  put: async () => import('./put.js').then(({putSpec, runPut}) => command({spec: putSpec, run: runPut})),
  rm: async () => import('./rm.js').then(({rmSpec, runRm}) => command({spec: rmSpec, run: runRm})),
  cat: async () => import('./cat.js').then(({catSpec, runCat}) => command({spec: catSpec, run: runCat, stdoutCarriesBytes: () => true})),
  master: async () => import('./master.js').then(({masterSpec, runMaster}) => command({spec: masterSpec, run: runMaster})),
  keeper: async () => import('./keeper.js').then(({keeperSpec, runKeeper}) => command({spec: keeperSpec, run: runKeeper})),
}

/** How the fast runner's commands end early; oclif's Command.exit throws its ExitError the same way. */
class ExitSignal extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`)
  }
}

/**
 * Runs `dfs ID ...` without loading @oclif/core when ID is a fast command and its argv parses
 * exactly (see fast-argv.ts); false when it does not, and oclif is to run it. Reports and exits
 * as oclif and DfsCommand do: lines through console.log, and on an error one line and
 * process.exit with the catalogue's code.
 */
export async function runFast(argv: readonly string[]): Promise<boolean> {
  // DFS_FAST_RUNNER=0: every command through oclif, to compare the two paths (a test does) or to rule one out.
  if (process.env['DFS_FAST_RUNNER'] === '0') return false
  const [id, ...rest] = argv
  const load = id !== undefined && Object.hasOwn(FAST_COMMANDS, id) ? FAST_COMMANDS[id] : undefined
  if (load === undefined) return false
  const fast = await load()
  const parsed = parseFast(fast.spec, rest)
  if (parsed === undefined) return false
  const io = new CommandIo({
    log: (text = '') => console.log(text),
    logToStderr: (text = '') => console.error(text),
    exit(code): never {
      throw new ExitSignal(code)
    },
    wantsJson: () => (parsed.flags as Record<string, unknown>)['json'] === true,
    stdoutCarriesBytes: () => fast.stdoutCarriesBytes?.(parsed) ?? false,
  })
  try {
    try {
      await fast.run(io, parsed)
    } catch (error) {
      if (error instanceof ExitSignal) throw error
      io.failWith(error instanceof Error ? error : new Error(String(error)))
    }
  } catch (error) {
    if (!(error instanceof ExitSignal)) throw error
    process.exit(error.exitCode)
  }

  return true
}
