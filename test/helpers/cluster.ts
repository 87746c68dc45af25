// Real processes for tests: a master and keepers started from bin/run.js on loopback, with
// ephemeral ports and temp dirs, and the CLI run the way a user runs it.

import {spawn, type ChildProcess} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import {once} from 'node:events'
import {after, afterEach, before} from 'node:test'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const BIN = join(REPO, 'bin', 'run.js')
export const FIXTURES = join(REPO, 'test', 'fixtures')

/** The mp4 samples shipped in test/fixtures, with their published sha256. */
export const SAMPLES = {
  'sample_1.mp4': {size: 1_570_024, sha256: '71944d7430c461f0cd6e7fd10cee7eb72786352a3678fc7bc0ae3d410f72aece'},
  'sample_2.mp4': {size: 1_329_470, sha256: 'bdc975b79cce657812070280ebfbc3fccd014232f1b70bbf5cb27556f4b5b28d'},
  'sample_3.mp4': {size: 3_549_387, sha256: 'a5da8e60519b7523e9602f4f2ce4f510fed9013ae4d291d5cada2bbbc5acab1e'},
} as const

// Short intervals so that tests run fast; the waits below have long deadlines only as a guard.
export const FAST = {
  heartbeatInterval: '150ms',
  heartbeatTimeout: '1500ms',
  replicationInterval: '1s',
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the dfs CLI to completion. */
export async function dfs(args: string[], options: {env?: NodeJS.ProcessEnv; stdin?: string} = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], {env: {...process.env, ...options.env}, stdio: ['pipe', 'pipe', 'pipe']})
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  child.stdin.end(options.stdin ?? '')
  const [code] = (await once(child, 'close')) as [number | null]
  return {code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8')}
}

/** Runs the CLI and parses its JSON output, failing with its stderr if it did not succeed. */
export async function dfsJson<T>(args: string[]): Promise<T> {
  const result = await dfs([...args, '--json'])
  if (result.code !== 0) throw new Error(`dfs ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}

/** Polls `check` until it returns a value other than undefined/false; the deadline only guards against hangs. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, deadlineMs = 60_000): Promise<T> {
  const started = Date.now()
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }

    if (Date.now() - started > deadlineMs) throw new Error(`gave up waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Writes `size` random bytes to `path` in 1 MiB chunks and returns their sha256. */
export async function randomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let written = 0; written < size; ) {
    const chunk = randomBytes(Math.min(1024 * 1024, size - written))
    hash.update(chunk)
    written += chunk.length
    if (!out.write(chunk)) await once(out, 'drain')
  }

  out.end()
  await once(out, 'close')
  return hash.digest('hex')
}

export async function tempDir(prefix = 'dfs-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

export async function json<T>(url: string, init?: RequestInit): Promise<{status: number; body: T}> {
  const response = await fetch(url, init)
  const text = await response.text()
  return {status: response.status, body: (text ? JSON.parse(text) : undefined) as T}
}

/** A server process of ours: its child process, the URL from its ready line, its captured logs. */
export class ServerProcess {
  readonly logs: string[] = []
  exited = false

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly id: string,
  ) {
    child.once('exit', () => {
      this.exited = true
    })
  }

  /** Spawns `dfs <args>` and resolves once it prints its "listening on" line. */
  static async start(args: string[]): Promise<ServerProcess> {
    const child = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe']})
    const logs: string[] = []
    createInterface({input: child.stderr!}).on('line', (line) => logs.push(line))
    const lines = createInterface({input: child.stdout!})
    const ready = await new Promise<{url: string; id: string}>((resolve, reject) => {
      lines.on('line', (line) => {
        logs.push(line)
        const match = /^dfs (master|keeper (\S+)) listening on (\S+)$/.exec(line)
        if (match) resolve({url: match[3]!, id: match[2] ?? 'master'})
      })
      child.once('exit', (code) => reject(new Error(`dfs ${args.join(' ')} exited with ${code} before it was ready:\n${logs.join('\n')}`)))
    })
    const server = new ServerProcess(child, ready.url, ready.id)
    server.logs.push(...logs)
    lines.on('line', (line) => server.logs.push(line))
    createInterface({input: child.stderr!}).on('line', (line) => server.logs.push(line))
    return server
  }

  /** Sends a signal and waits for the process to exit; returns its exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.exited) return this.child.exitCode
    const exit = once(this.child, 'exit') as Promise<[number | null]>
    this.child.kill(signal)
    const [code] = await exit
    return code
  }
}

export interface ClusterOptions {
  keepers?: number
  replicas?: number
  masterArgs?: string[]
  keeperArgs?: string[]
}

/** A master and keepers in one temp dir; `stop` ends every process and removes the dir. */
export class TestCluster {
  master!: ServerProcess
  readonly keepers: ServerProcess[] = []
  readonly keeperDirs: string[] = []
  masterPort = 0

  private constructor(
    readonly dir: string,
    readonly options: ClusterOptions,
  ) {}

  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(await tempDir(), options)
    await cluster.startMaster()
    await Promise.all(Array.from({length: options.keepers ?? 4}, () => cluster.addKeeper()))
    return cluster
  }

  get masterUrl(): string {
    return this.master.url
  }

  /** Starts the master; after the first start it comes back on the same port and data dir. */
  async startMaster(): Promise<ServerProcess> {
    this.master = await ServerProcess.start([
      'master',
      '--port', String(this.masterPort),
      '--data', join(this.dir, 'master'),
      '--replicas', String(this.options.replicas ?? 3),
      ...withDefaults(this.options.masterArgs, {'--heartbeat-timeout': FAST.heartbeatTimeout, '--replication-interval': FAST.replicationInterval}),
    ])
    this.masterPort = Number(new URL(this.master.url).port)
    return this.master
  }

  /** Starts a keeper with a fresh data dir, or restarts one on the data dir it had. */
  async addKeeper(dataDir?: string): Promise<ServerProcess> {
    const dir = dataDir ?? join(this.dir, `keeper-${this.keeperDirs.length + 1}`)
    if (!this.keeperDirs.includes(dir)) this.keeperDirs.push(dir)
    const keeper = await ServerProcess.start([
      'keeper',
      '--master', this.masterUrl,
      '--data', dir,
      ...withDefaults(this.options.keeperArgs, {'--heartbeat-interval': FAST.heartbeatInterval}),
    ])
    const index = this.keeperDirs.indexOf(dir)
    this.keepers[index] = keeper
    return keeper
  }

  keeperById(id: string): ServerProcess {
    const keeper = this.keepers.find((candidate) => candidate.id === id)
    if (!keeper) throw new Error(`no keeper ${id} in this cluster`)
    return keeper
  }

  dataDirOf(keeper: ServerProcess): string {
    return this.keeperDirs[this.keepers.indexOf(keeper)]!
  }

  /** Runs the CLI against this cluster's master. */
  dfs(args: string[]): Promise<RunResult> {
    return dfs([...args, '--master', this.masterUrl])
  }

  dfsJson<T>(args: string[]): Promise<T> {
    return dfsJson<T>([...args, '--master', this.masterUrl])
  }

  async stat(name: string): Promise<{name: string; fileId: string; size: number; sha256: string; replicas: Array<{keeper: string; url: string; alive: boolean; path: string}>}> {
    const {status, body} = await json<any>(`${this.masterUrl}/files/${encodeURIComponent(name)}`)
    if (status !== 200) throw new Error(`stat ${name}: ${status} ${JSON.stringify(body)}`)
    return body
  }

  /** Waits until `name` has exactly `count` replicas on alive keepers; returns their keeper ids. */
  async waitForReplicas(name: string, count: number): Promise<string[]> {
    return waitFor(`${count} alive replicas of ${name}`, async () => {
      const alive = (await this.stat(name)).replicas.filter((replica) => replica.alive)
      return alive.length === count ? alive.map((replica) => replica.keeper) : undefined
    })
  }

  async keeperStatus(): Promise<Array<{id: string; url: string; alive: boolean; files: number; storedBytes: number; freeBytes: number}>> {
    return (await json<any>(`${this.masterUrl}/keepers`)).body.keepers
  }

  async stop(): Promise<void> {
    await Promise.all([...this.keepers, this.master].filter(Boolean).map((server) => server.stop('SIGKILL')))
    await rm(this.dir, {recursive: true, force: true})
  }

  /** Prints every process's log; call from a failing test to see why. */
  async dumpLogs(): Promise<string> {
    const parts = [`--- master\n${this.master.logs.join('\n')}`]
    for (const keeper of this.keepers) parts.push(`--- keeper ${keeper.id}\n${keeper.logs.join('\n')}`)
    return parts.join('\n')
  }
}

/** `args` plus each default flag that `args` does not set itself. */
function withDefaults(args: string[] = [], defaults: Record<string, string>): string[] {
  const extra = Object.entries(defaults).filter(([flag]) => !args.includes(flag)).flat()
  return [...args, ...extra]
}

/**
 * For a suite whose tests each need a fresh cluster: a temp work dir for the suite, and whatever
 * cluster a test started is stopped after it, pass or fail.
 */
export function clusterPerTest(): {start(options?: ClusterOptions): Promise<TestCluster>; readonly work: string} {
  let current: TestCluster | undefined
  let work = ''
  before(async () => {
    work = await tempDir()
  })
  afterEach(async () => {
    await current?.stop()
    current = undefined
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })
  return {
    async start(options) {
      current = await TestCluster.start(options)
      return current
    },
    get work() {
      return work
    },
  }
}

export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T
}
