// Child processes of the bench: spawned, tracked, timed, and always cleaned up (with the temp
// directories) when the bench ends, fails or is interrupted. The dfs servers are started by the
// launcher of dfs (bench/cluster.ts); every child, theirs and these, is in the launcher's registry.

import {spawn, type ChildProcess, type SpawnOptions} from 'node:child_process'
import {readFileSync, rmSync} from 'node:fs'
import {readFile, rm} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {performance} from 'node:perf_hooks'
import {pathToFileURL} from 'node:url'

import {DFS_BIN, killTrackedChildren, trackChild} from '../src/roles/cluster/node-process.js'

export {DFS_BIN}

/** The repository root (dist/bench/ is two levels below it). */
export const ROOT = resolve(import.meta.dirname, '..', '..')
export const BENCH_DIST = import.meta.dirname
const RSS_PROBE = pathToFileURL(join(BENCH_DIST, 'rss-probe.js')).href

const tempDirs = new Set<string>()

export interface Tracked {
  child: ChildProcess
  pid: number
  /** Everything written to stdout / stderr so far. */
  stdout(): string
  stderr(): string
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  /** Resolves once the process has exited and its pipes are drained. */
  closed: Promise<void>
}

/** Spawns a process that is killed when the bench ends, whatever the reason. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): Tracked {
  const child = spawn(command, args, {stdio: ['ignore', 'pipe', 'pipe'], ...options})
  if (child.pid === undefined) throw new Error(`cannot start ${command}`)
  trackChild(child)
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (out += text))
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (err = (err + text).slice(-64 * 1024)))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({code, signal}))
  })
  // A failure to run (e.g. ENOENT) then shows as an exit with the reason on stderr, not as a crash.
  child.on('error', (error) => (err += `\n${error.message}`))
  const closed = new Promise<void>((resolveClose) => child.once('close', () => resolveClose()))
  return {child, pid: child.pid, stdout: () => out, stderr: () => err, exited, closed}
}

/** Waits for a line of stdout matching `pattern`; fails if the process exits or time runs out. */
export async function waitForLine(proc: Tracked, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const match = pattern.exec(proc.stdout())
    if (match) return match
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${what} exited (${proc.child.exitCode ?? proc.child.signalCode}) before it was ready: ${lastLines(proc.stderr())}`)
    }

    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${timeoutMs} ms: ${lastLines(proc.stderr())}`)
    await new Promise((resolveWait) => setTimeout(resolveWait, 10))
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(proc: Tracked, graceMs = 10_000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  proc.child.kill('SIGTERM')
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs)
  await proc.exited
  clearTimeout(timer)
}

export function lastLines(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join(' | ') || '(no output)'
}

/** Peak resident set size (VmHWM; or the current one, VmRSS) of a live process in MB (10^6 bytes), or undefined if it is gone. */
export function peakRssMB(pid: number, field: 'VmHWM' | 'VmRSS' = 'VmHWM'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? (Number(match[1]) * 1024) / 1e6 : undefined
  } catch {
    return undefined
  }
}

/**
 * CPU time (user + system) a live process has used so far, in seconds, or undefined if it is gone.
 * A figure the load of a shared machine barely changes, unlike the wall clock.
 */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces; utime and stime are fields 14 and 15, in USER_HZ
    // ticks, which Linux fixes at 100 a second for /proc.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

export interface NodeRunOptions {
  /** Extra arguments for node itself (e.g. --cpu-prof). */
  nodeArgs?: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Record the peak RSS through the probe (not for start-up timing, the probe costs a module load). */
  measureRss?: boolean
  timeoutMs?: number
  /** A command that runs node for us, e.g. ['ip', 'netns', 'exec', NS]. */
  prefix?: string[]
}

export interface RunResult {
  ms: number
  /** performance.now() just before the spawn. */
  startedAt: number
  code: number | null
  stdout: string
  stderr: string
  /** Peak RSS in MB when measured. */
  peakRssMB?: number
  /** CPU time (user + system) in seconds, measured with the peak RSS. */
  cpuS?: number
}

let probeSeq = 0

/** Starts `node [nodeArgs] script args…` and resolves when it exits, with its time and output. */
export function startNode(script: string, args: string[], options: NodeRunOptions = {}, scratch?: string): {proc: Tracked; done: Promise<RunResult>} {
  const nodeArgs = [...(options.nodeArgs ?? [])]
  let rssFile: string | undefined
  if (options.measureRss) {
    if (!scratch) throw new Error('measuring RSS needs a scratch directory')
    rssFile = join(scratch, `rss-${process.pid}-${probeSeq++}.txt`)
    nodeArgs.push('--import', RSS_PROBE)
  }

  const started = performance.now()
  const [command, ...commandArgs] = [...(options.prefix ?? []), process.execPath, ...nodeArgs, script, ...args]
  const proc = spawnTracked(command!, commandArgs, {
    cwd: options.cwd,
    env: {...process.env, ...options.env, ...(rssFile ? {BENCH_RSS_FILE: rssFile} : {})},
  })
  const timer = options.timeoutMs ? setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs) : undefined
  const done = (async (): Promise<RunResult> => {
    const {code, signal} = await proc.exited
    const ms = performance.now() - started
    clearTimeout(timer)
    // Let the pipes drain so that the whole output is there.
    await proc.closed
    let peak: number | undefined
    let cpuS: number | undefined
    if (rssFile) {
      const [bytes, cpu] = (await readFile(rssFile, 'utf8').catch(() => '')).split(' ')
      peak = bytes ? Number(bytes) / 1e6 : undefined
      cpuS = cpu ? Number(cpu) : undefined
      await rm(rssFile, {force: true})
    }

    return {ms, startedAt: started, code: signal ? 128 : code, stdout: proc.stdout(), stderr: proc.stderr(), peakRssMB: peak, cpuS}
  })()
  return {proc, done}
}

/** Runs the dfs CLI once; throws if it fails, since the bench cannot go on from a failed command. */
export async function runDfs(args: string[], options: NodeRunOptions = {}, scratch?: string): Promise<RunResult> {
  const result = await startNode(DFS_BIN, args, options, scratch).done
  if (result.code !== 0) throw new Error(`dfs ${args.slice(0, 3).join(' ')}… failed (exit ${result.code}): ${lastLines(result.stderr)}`)
  return result
}

/** Runs a command (not node) to its end; throws on a non-zero exit. */
export async function runCommand(command: string, args: string[], options: SpawnOptions = {}): Promise<RunResult> {
  const started = performance.now()
  const proc = spawnTracked(command, args, options)
  const {code} = await proc.exited
  const ms = performance.now() - started
  await proc.closed
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${code}): ${lastLines(proc.stderr())}`)
  return {ms, startedAt: started, code, stdout: proc.stdout(), stderr: proc.stderr()}
}

/** Registers a directory to remove when the bench ends. */
export function trackTempDir(path: string): string {
  tempDirs.add(path)
  return path
}

export async function removeTempDir(path: string): Promise<void> {
  await rm(path, {recursive: true, force: true})
  tempDirs.delete(path)
}

/** Kills every child still running and removes every temp directory; synchronous, so it also works in 'exit'. */
export function cleanUpNow(): void {
  killTrackedChildren('SIGKILL')
  for (const dir of tempDirs) {
    try {
      rmSync(dir, {recursive: true, force: true})
    } catch {
      // best effort: nothing else to do on the way out
    }
  }

  tempDirs.clear()
}

/** Cleans up on normal exit, on errors and on Ctrl-C / SIGTERM / SIGHUP. */
export function installCleanupHandlers(): void {
  process.on('exit', cleanUpNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping the cluster and removing temp files\n`)
      cleanUpNow()
      process.exit(130)
    })
  }
}
