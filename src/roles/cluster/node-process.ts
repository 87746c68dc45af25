import type {ChildProcess} from 'node:child_process'
import {closeSync, openSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {relative, isAbsolute} from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {execa, type Result, type ResultPromise} from 'execa'

import {DfsError} from '../../lib/errors.js'
import {keeperRoutes, masterRoutes} from '../../lib/protocol.js'
import {Peer} from '../../lib/peer-client.js'
import {RetryPolicy} from '../../lib/retry-policy.js'

/**
 * The dfs executable of this very package, found from this compiled module
 * (dist/src/roles/cluster/), so children run the same code from a clone and from a global install.
 */
export const DFS_BIN = fileURLToPath(new URL('../../../../bin/run.js', import.meta.url))

export type NodeRole = 'master' | 'keeper'

export interface NodeProcessOptions {
  /** A short name for people and for the log file: "master", "keeper-2". */
  name: string
  role: NodeRole
  /** Arguments after the dfs executable, e.g. ['master', '--port', '7700', ...]. */
  args: string[]
  /** Where the child's stdout and stderr are appended; without one they are only kept in memory. */
  logFile?: string
  /**
   * How many of the child's last output lines to keep in `lines`: every line by default when there
   * is no log file (tests read them), none when there is one (a long-running cluster would only grow).
   */
  keepLines?: number
  /** The dfs executable to run with this node binary; DFS_BIN by default. */
  bin?: string
  /** Arguments for node itself, before the dfs executable (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /**
   * A command that runs node for us, e.g. ['ip', 'netns', 'exec', 'ns1']: the child is then
   * `prefix… node [nodeArgs] bin args`. It must exec node in its place, so that the pid is node's.
   */
  prefix?: string[]
  cwd?: string
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv
  /**
   * Whether the child gets a process group of its own (the default): a Ctrl-C in the terminal then
   * reaches only us, and we stop the children in order. Tests and the bench want Ctrl-C to reach them.
   */
  detached?: boolean
  /** How long the child may take to say it is listening. Default 60 s. */
  readyTimeoutMs?: number
  /** The connection pool to ask its GET /health with: one that trusts its CA, if it serves https. */
  agent?: Peer['agent']
  /** How long a child may take to stop after a signal other than SIGKILL before it is killed. Default 10 s. */
  stopTimeoutMs?: number
  /** Called once when the child exits; `expected` is false if nobody asked it to stop. */
  onExit?: (node: NodeProcess, exit: NodeExit, expected: boolean) => void
}

export interface NodeExit {
  code?: number
  signal?: string
  /** True if it ignored SIGTERM for the stop timeout and was killed. */
  forced: boolean
  /** Why it could not be spawned at all. */
  error?: string
}

export type NodeState = 'idle' | 'starting' | 'running' | 'stopping' | 'exited'

/**
 * One master or keeper run as a child process of this one, the one way dfs starts its servers
 * (`cluster up`, the tests, the bench, the chaos run): its output goes to its log file and/or to
 * memory, and it counts as started only once it printed the line that says where it listens (a
 * keeper prints it after registering with the master) and answers GET /health. Every child is in
 * the registry that killTrackedChildren() empties.
 */
export class NodeProcess {
  readonly name: string
  readonly role: NodeRole
  readonly logFile?: string
  /** The last `keepLines` lines of its stdout and stderr, in the order they arrived. */
  readonly lines: string[] = []
  state: NodeState = 'idle'
  pid?: number
  url?: string
  /** The keeper id the master gave it (keepers only). */
  id?: string
  /** How it ended, once it has. */
  exit?: NodeExit
  #options: NodeProcessOptions
  #keepLines: number
  /** Lines seen in all, to find those of this start when older ones were dropped. */
  #lineCount = 0
  #subprocess?: ResultPromise
  #exited?: Promise<NodeExit>
  #stopRequested = false
  #forced = false

  constructor(options: NodeProcessOptions) {
    this.#options = options
    this.name = options.name
    this.role = options.role
    this.logFile = options.logFile
    this.#keepLines = options.keepLines ?? (options.logFile ? 0 : Infinity)
  }

  /** The child process itself, once spawned. */
  get subprocess(): ChildProcess | undefined {
    return this.#subprocess
  }

  /** Resolves once the child has exited; undefined before it was spawned. */
  get exited(): Promise<NodeExit> | undefined {
    return this.#exited
  }

  /** Spawns the child and resolves once it serves; rejects (and leaves no child behind) if it cannot. */
  async start(): Promise<{url: string; id?: string}> {
    if (this.state !== 'idle') throw new Error(`${this.name} was already started`)
    this.state = 'starting'
    const logFile = this.logFile
    const logOffset = logFile ? await endLine(logFile) : 0
    const linesBefore = this.#lineCount
    const readyTimeoutMs = this.#options.readyTimeoutMs ?? 60_000
    // Without lines to keep, stderr goes straight to the file (the child keeps logging there even
    // if we die first); stdout is always read here for the ready line, and copied to the file.
    const stderrFd = logFile && this.#keepLines === 0 ? openSync(logFile, 'a') : undefined
    const toFile = logFile ? [{file: logFile, append: true}] : []
    const [command, ...commandArgs] = [...(this.#options.prefix ?? []), process.execPath, ...(this.#options.nodeArgs ?? []), this.#options.bin ?? DFS_BIN, ...this.#options.args]
    const spawn = () =>
      execa(command!, commandArgs, {
        stdin: 'ignore',
        stdout: ['pipe', ...toFile],
        // execa's types list only fds 3 to 9, but it hands any open fd to spawn() as is.
        stderr: stderrFd === undefined ? ['pipe', ...toFile] : (stderrFd as 3),
        buffer: false,
        reject: false,
        detached: this.#options.detached ?? true,
        // Our registry kills children at exit; execa's cleanup would add signal handlers of its own.
        cleanup: false,
        forceKillAfterDelay: false,
        cwd: this.#options.cwd,
        env: {FORCE_COLOR: '0', ...this.#options.env},
      })
    let subprocess: ReturnType<typeof spawn>
    try {
      subprocess = spawn()
    } finally {
      if (stderrFd !== undefined) closeSync(stderrFd)
    }

    this.#subprocess = subprocess
    this.pid = subprocess.pid
    trackChild(subprocess)
    this.#exited = subprocess.then((result: Result) => {
      const exit: NodeExit = {code: result.exitCode, signal: result.signal, forced: this.#forced}
      // Set only when it could not even be spawned.
      if (result.exitCode === undefined && result.signal === undefined) exit.error = result.shortMessage
      const expected = this.#stopRequested
      this.state = 'exited'
      this.exit = exit
      this.#options.onExit?.(this, exit, expected)
      return exit
    })

    if (stderrFd === undefined) createInterface({input: subprocess.stderr!, crlfDelay: Infinity}).on('line', (line) => this.#keep(line))
    const ready = new Promise<{url: string; id?: string}>((resolve) => {
      const lines = createInterface({input: subprocess.stdout!, crlfDelay: Infinity})
      lines.on('line', (line) => {
        this.#keep(line)
        const parsed = parseReadyLine(this.role, line.trim())
        if (parsed) resolve(parsed)
      })
    })

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), readyTimeoutMs)
    })
    const outcome = await Promise.race([ready, this.#exited.then((exit) => ({exit})), timeout])
    clearTimeout(timer)
    const since = {logOffset, lines: linesBefore}

    if (outcome === 'timeout') {
      await this.stop()
      throw await this.#startError(`it did not say it was listening within ${readyTimeoutMs / 1000} s`, since, false)
    }

    if ('exit' in outcome) {
      if (this.#stopRequested) throw new DfsError('DFS_ERR_SHUTTING_DOWN', `${this.name} was stopped before it was ready`)
      throw await this.#startError(describeExit(outcome.exit), since)
    }

    try {
      await checkHealth(this.role, outcome.url, this.#options.agent)
    } catch (error) {
      await this.stop()
      throw await this.#startError(`it said it listens on ${outcome.url} but GET /health failed: ${(error as Error).message}`, since, false)
    }

    this.url = outcome.url
    this.id = outcome.id
    if (this.state === 'starting') this.state = 'running'
    return outcome
  }

  /** True while the child process exists. */
  get alive(): boolean {
    return this.#subprocess !== undefined && this.state !== 'exited'
  }

  /** Sends `signal` (SIGTERM by default), then SIGKILL after the stop timeout; resolves once the child has exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<NodeExit | undefined> {
    if (!this.#subprocess || !this.#exited) return undefined
    this.#stopRequested = true
    if (this.state !== 'exited') {
      this.state = 'stopping'
      this.#subprocess.kill(signal)
      if (signal !== 'SIGKILL') {
        const timer = setTimeout(() => {
          if (this.state === 'exited') return
          this.#forced = true
          this.#subprocess?.kill('SIGKILL')
        }, this.#options.stopTimeoutMs ?? 10_000)
        void this.#exited.finally(() => clearTimeout(timer))
      }
    }

    return this.#exited
  }

  /** Signals the child without waiting, for when this process is about to exit. */
  signal(signal: NodeJS.Signals): void {
    if (!this.alive || this.pid === undefined) return
    this.#stopRequested = true
    try {
      process.kill(this.pid, signal)
    } catch {
      // Already gone.
    }
  }

  #keep(line: string): void {
    this.#lineCount++
    if (this.#keepLines === 0) return
    this.lines.push(line)
    if (this.lines.length > this.#keepLines) this.lines.shift()
  }

  /** What it printed since `since` (a log file offset, a count of lines). */
  async #outputSince(since: {logOffset: number; lines: number}): Promise<string> {
    if (this.logFile) return readFrom(this.logFile, since.logOffset)
    const count = Math.min(this.lines.length, this.#lineCount - since.lines)
    return count > 0 ? this.lines.slice(-count).join('\n') : ''
  }

  /** One line on why it did not start, with the tail of what it logged this time. */
  async #startError(reason: string, since: {logOffset: number; lines: number}, preferLog = true): Promise<NodeStartError> {
    const log = await this.#outputSince(since)
    const where = this.logFile ? ` (see ${displayPath(this.logFile)})` : ''
    const who = this.role === 'master' ? 'the master' : this.name
    const busy = /EADDRINUSE[^\n]*?:(\d+)\b/.exec(log)
    if (busy) return new NodeStartError(`${who} could not start: port ${busy[1]} is in use${where}`, this.logFile, '')
    const summary = preferLog ? lastError(log) : undefined
    const tail = log
      .split('\n')
      .filter((line) => line.trim() !== '' && line.trim() !== `Error: ${summary}`)
      .slice(-10)
      .join('\n')
    return new NodeStartError(`${who} could not start: ${summary ?? reason}${where}`, this.logFile, tail)
  }
}

/** A child that could not start: a one-line message, plus the last lines it logged for people to read. */
export class NodeStartError extends DfsError {
  /** Where its whole output is, if it had a log file. */
  readonly logFile?: string
  /** The last lines (at most 10) the child logged during this start, '' if they add nothing. */
  readonly logTail: string

  constructor(message: string, logFile: string | undefined, logTail: string) {
    super('DFS_ERR_INTERNAL', message)
    this.logFile = logFile
    this.logTail = logTail
  }
}

const liveChildren = new Set<ChildProcess>()

/**
 * Puts a child in the registry of live children until it exits, so that killTrackedChildren()
 * can end it however this process ends. Every NodeProcess is in it; other launchers add theirs.
 */
export function trackChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  liveChildren.add(child)
  child.once('exit', () => liveChildren.delete(child))
}

/**
 * Signals every tracked child still running, without waiting; synchronous, so that it also works
 * in a process 'exit' handler or a signal handler on the way out. Returns how many were signalled.
 */
export function killTrackedChildren(signal: NodeJS.Signals = 'SIGKILL'): number {
  let signalled = 0
  for (const child of liveChildren) {
    try {
      process.kill(child.pid!, signal)
      signalled++
    } catch {
      // Already gone; its 'exit' event has not been handled yet.
    }

    if (signal === 'SIGKILL') liveChildren.delete(child)
  }

  return signalled
}

/** Reads "dfs master listening on URL" or "dfs keeper ID listening on URL". */
export function parseReadyLine(role: NodeRole, line: string): {url: string; id?: string} | undefined {
  if (role === 'master') {
    const match = /^dfs master listening on (\S+)$/.exec(line)
    return match ? {url: match[1]!} : undefined
  }

  const match = /^dfs keeper (\S+) listening on (\S+)$/.exec(line)
  return match ? {id: match[1]!, url: match[2]!} : undefined
}

/** A path for people: relative to the working directory when inside it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : rel
}

function describeExit(exit: NodeExit): string {
  if (exit.error) return exit.error
  return exit.signal ? `it was killed by ${exit.signal}` : `it exited with code ${exit.code}`
}

/** The error line the dfs CLI printed before exiting ("Error: ..."), or the last fatal log entry. */
function lastError(log: string): string | undefined {
  const lines = log.split('\n').map((line) => line.trim()).filter(Boolean)
  for (const line of lines.reverse()) {
    const cliError = /^(?:›\s*)?Error:\s*(.+)$/.exec(line)
    if (cliError) return cliError[1]
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as {level?: number; msg?: string}
        if ((entry.level ?? 0) >= 50 && entry.msg) return entry.msg
      } catch {
        // Not a log entry.
      }
    }
  }

  return undefined
}

async function checkHealth(role: NodeRole, url: string, agent: Peer['agent'] | undefined): Promise<void> {
  const peer = new Peer({role, baseUrl: url, agent, retry: RetryPolicy.never})
  await peer.call(role === 'master' ? masterRoutes.health : keeperRoutes.health, {}, {signal: AbortSignal.timeout(5000)})
}

/** Ends the log with a newline if its last writer left none (a CLI error line has none), and returns its size. */
async function endLine(path: string): Promise<number> {
  try {
    const file = await open(path, 'a+')
    try {
      const {size} = await file.stat()
      if (size === 0) return 0
      const last = Buffer.alloc(1)
      await file.read(last, 0, 1, size - 1)
      if (last[0] === 0x0a) return size
      await file.write('\n')
      return size + 1
    } finally {
      await file.close()
    }
  } catch {
    return 0
  }
}

async function readFrom(path: string, offset: number): Promise<string> {
  try {
    const file = await open(path, 'r')
    try {
      const {size} = await file.stat()
      const start = Math.max(offset, size - 64 * 1024)
      const buffer = Buffer.alloc(Math.max(0, size - start))
      await file.read(buffer, 0, buffer.length, start)
      return buffer.toString('utf8')
    } finally {
      await file.close()
    }
  } catch {
    return ''
  }
}
