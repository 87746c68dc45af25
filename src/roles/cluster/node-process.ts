import {closeSync, openSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {relative, isAbsolute} from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

import {execa, type Result, type ResultPromise} from 'execa'

import {DfsError} from '../../lib/errors.js'

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
  /** Where the child's stdout and stderr are appended. */
  logFile: string
  /** The dfs executable to run with this node binary; DFS_BIN by default. */
  bin?: string
  /** How long the child may take to say it is listening. */
  readyTimeoutMs: number
  /** How long a child may take to stop after SIGTERM before it is killed. */
  stopTimeoutMs: number
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
 * One master or keeper run as a child process of this one: its output is appended to its log file,
 * and it counts as started only once it printed the line that says where it listens (a keeper
 * prints it after registering with the master) and answers GET /health.
 */
export class NodeProcess {
  readonly name: string
  readonly role: NodeRole
  readonly logFile: string
  state: NodeState = 'idle'
  pid?: number
  url?: string
  /** The keeper id the master gave it (keepers only). */
  id?: string
  #options: NodeProcessOptions
  #subprocess?: ResultPromise
  #exited?: Promise<NodeExit>
  #stopRequested = false

  constructor(options: NodeProcessOptions) {
    this.#options = options
    this.name = options.name
    this.role = options.role
    this.logFile = options.logFile
  }

  /** Spawns the child and resolves once it serves; rejects (and leaves no child behind) if it cannot. */
  async start(): Promise<{url: string; id?: string}> {
    if (this.state !== 'idle') throw new Error(`${this.name} was already started`)
    this.state = 'starting'
    const logOffset = await endLine(this.logFile)
    // stderr goes straight to the file (the child keeps logging there even if we die first);
    // stdout is read here for the ready line and copied to the same file.
    const stderrFd = openSync(this.logFile, 'a')
    const spawn = () =>
      execa(process.execPath, [this.#options.bin ?? DFS_BIN, ...this.#options.args], {
        stdin: 'ignore',
        stdout: ['pipe', {file: this.logFile, append: true}],
        // execa's types list only fds 3 to 9, but it hands any open fd to spawn() as is.
        stderr: stderrFd as 3,
        buffer: false,
        reject: false,
        // Own process group: a Ctrl-C in the terminal reaches only us, and we stop the children in order.
        detached: true,
        cleanup: false,
        forceKillAfterDelay: this.#options.stopTimeoutMs,
        env: {FORCE_COLOR: '0'},
      })
    let subprocess: ReturnType<typeof spawn>
    try {
      subprocess = spawn()
    } finally {
      closeSync(stderrFd)
    }

    this.#subprocess = subprocess
    this.pid = subprocess.pid
    this.#exited = subprocess.then((result: Result) => {
      const exit: NodeExit = {code: result.exitCode, signal: result.signal, forced: result.isForcefullyTerminated}
      // Set only when it could not even be spawned.
      if (result.exitCode === undefined && result.signal === undefined) exit.error = result.shortMessage
      const expected = this.#stopRequested
      this.state = 'exited'
      this.#options.onExit?.(this, exit, expected)
      return exit
    })

    const ready = new Promise<{url: string; id?: string}>((resolve) => {
      const lines = createInterface({input: subprocess.stdout!, crlfDelay: Infinity})
      lines.on('line', (line) => {
        const parsed = parseReadyLine(this.role, line.trim())
        if (parsed) resolve(parsed)
      })
    })

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#options.readyTimeoutMs)
    })
    const outcome = await Promise.race([ready, this.#exited.then((exit) => ({exit})), timeout])
    clearTimeout(timer)

    if (outcome === 'timeout') {
      await this.stop()
      throw await this.#startError(`it did not say it was listening within ${this.#options.readyTimeoutMs / 1000} s`, logOffset, false)
    }

    if ('exit' in outcome) {
      if (this.#stopRequested) throw new DfsError('DFS_ERR_SHUTTING_DOWN', `${this.name} was stopped before it was ready`)
      throw await this.#startError(describeExit(outcome.exit), logOffset)
    }

    try {
      await checkHealth(outcome.url)
    } catch (error) {
      await this.stop()
      throw await this.#startError(`it said it listens on ${outcome.url} but GET /health failed: ${(error as Error).message}`, logOffset, false)
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

  /** SIGTERM, then SIGKILL after the stop timeout; resolves once the child has exited. */
  async stop(): Promise<NodeExit | undefined> {
    if (!this.#subprocess || !this.#exited) return undefined
    this.#stopRequested = true
    if (this.state !== 'exited') {
      this.state = 'stopping'
      this.#subprocess.kill('SIGTERM')
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

  /** One line on why it did not start, with the tail of what it logged this time. */
  async #startError(reason: string, logOffset: number, preferLog = true): Promise<NodeStartError> {
    const log = await readFrom(this.logFile, logOffset)
    const where = `see ${displayPath(this.logFile)}`
    const who = this.role === 'master' ? 'the master' : this.name
    const busy = /EADDRINUSE[^\n]*?:(\d+)\b/.exec(log)
    if (busy) return new NodeStartError(`${who} could not start: port ${busy[1]} is in use (${where})`, this.logFile, '')
    const summary = preferLog ? lastError(log) : undefined
    const tail = log
      .split('\n')
      .filter((line) => line.trim() !== '' && line.trim() !== `Error: ${summary}`)
      .slice(-10)
      .join('\n')
    return new NodeStartError(`${who} could not start: ${summary ?? reason} (${where})`, this.logFile, tail)
  }
}

/** A child that could not start: a one-line message, plus the last lines it logged for people to read. */
export class NodeStartError extends DfsError {
  readonly logFile: string
  /** The last lines (at most 10) the child logged during this start, '' if they add nothing. */
  readonly logTail: string

  constructor(message: string, logFile: string, logTail: string) {
    super('DFS_ERR_INTERNAL', message)
    this.logFile = logFile
    this.logTail = logTail
  }
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

async function checkHealth(url: string): Promise<void> {
  const response = await fetch(`${url}/health`, {signal: AbortSignal.timeout(5000)})
  await response.arrayBuffer()
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
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
