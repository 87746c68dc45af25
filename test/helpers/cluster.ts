// Real processes for tests: a master and keepers started from bin/run.js on loopback, with
// ephemeral ports and temp dirs, and the CLI run the way a user runs it.
//
// Servers start through the one launcher of dfs (NodeProcess, as `cluster up` and the bench do),
// so every child is in its registry; cleanup.ts kills what still runs and removes every tempDir()
// when the test process exits, however it exits. Every wait has a deadline (the ready line, a CLI
// run, waitFor), and when a test fails the tail of each server's log is printed after it.

import type {ChildProcess} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {once} from 'node:events'
import {after, afterEach, before, beforeEach} from 'node:test'
import {fileURLToPath} from 'node:url'

import {mintClientToken} from '../../src/lib/client-tokens.js'
import {ClusterKey, createKeyFile} from '../../src/lib/cluster-key.js'
import {mintGrant, type GrantOp} from '../../src/lib/grants.js'
import {connectionPool, type Peer} from '../../src/lib/peer-client.js'
import {ensureLocalCertificates, type LocalCertificates} from '../../src/roles/cluster/local-certificates.js'
import {DFS_BIN, NodeProcess} from '../../src/roles/cluster/node-process.js'
import {blobPath} from '../../src/roles/keeper/file-store.js'
import {installCleanup, killLeftovers, removeAtExit, reportOnSignal} from './cleanup.js'
import {CLI_TIMEOUT_MS, runCli, type CliOptions} from './cli.js'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const BIN = DFS_BIN
export const FIXTURES = join(REPO, 'test', 'fixtures')

/** The mp4 samples shipped in test/fixtures, with their published sha256. */
export const SAMPLES = {
  'sample_1.mp4': {size: 1_570_024, sha256: '71944d7430c461f0cd6e7fd10cee7eb72786352a3678fc7bc0ae3d410f72aece'},
  'sample_2.mp4': {size: 1_329_470, sha256: 'bdc975b79cce657812070280ebfbc3fccd014232f1b70bbf5cb27556f4b5b28d'},
  'sample_3.mp4': {size: 3_549_387, sha256: 'a5da8e60519b7523e9602f4f2ce4f510fed9013ae4d291d5cada2bbbc5acab1e'},
} as const

// Short intervals so that tests run fast; the waits below have long deadlines only as a guard.
// Heartbeats every 300 ms: five chances within the timeout. An idle keeper and its master spend
// their CPU on heartbeats, and the suite is CPU-bound on 2 cores; every 150 ms cost it CPU for no
// check a test makes (a keeper silent for the timeout is dead either way).
export const FAST = {
  heartbeatInterval: '300ms',
  heartbeatTimeout: '1500ms',
  replicationInterval: '1s',
}

/** Deadlines that only guard against hangs: a server's ready line, and its exit after SIGTERM before SIGKILL. */
const SERVER_READY_TIMEOUT_MS = 60_000
const SERVER_STOP_TIMEOUT_MS = 30_000

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs the dfs CLI to completion. A command that outlives `timeoutMs` (CLI_TIMEOUT_MS by default)
 * is killed, and the call fails with what it printed.
 */
export async function dfs(args: string[], options: CliOptions = {}): Promise<RunResult> {
  const {code, stdout, stderr, hung} = await runCli(args, options)
  if (hung) {
    const seconds = (options.timeoutMs ?? CLI_TIMEOUT_MS) / 1000
    throw new Error(`dfs ${args.join(' ')} did not finish within ${seconds} s and was killed\n--- its stdout\n${stdout}\n--- its stderr\n${stderr}`)
  }

  return {code, stdout, stderr}
}

/** Runs the CLI and parses its JSON output, failing with its stderr if it did not succeed. */
export async function dfsJson<T>(args: string[], options: CliOptions = {}): Promise<T> {
  const result = await dfs([...args, '--json'], options)
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

/** A fresh directory under the temp dir; removed when the test process exits if the test did not remove it. */
export async function tempDir(prefix = 'dfs-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  removeAtExit(dir)
  return dir
}

/** The header that shows a client token: for a test's own requests to a master. */
export function bearer(token: string): {authorization: string} {
  return {authorization: `Bearer ${token}`}
}

/** Fetches and parses JSON; the 60 s deadline only guards against a server that never answers. */
export async function json<T>(url: string, init?: RequestInit): Promise<{status: number; body: T}> {
  const response = await fetch(url, {signal: AbortSignal.timeout(60_000), ...init})
  const text = await response.text()
  return {status: response.status, body: (text ? JSON.parse(text) : undefined) as T}
}

/** A server process of ours: its child process, the URL from its ready line, its captured logs. */
export class ServerProcess {
  private constructor(
    /** The launcher's handle on it. */
    readonly node: NodeProcess,
    readonly url: string,
    readonly id: string,
  ) {}

  get child(): ChildProcess {
    return this.node.subprocess!
  }

  /** Every line it printed on stdout and stderr, in the order they arrived. */
  get logs(): string[] {
    return this.node.lines
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null
  }

  /**
   * Spawns `dfs <args>` (args[0] is master or keeper) and resolves once it prints its "listening on"
   * line and answers /health; fails with the tail of its output if it exits or is not ready in time.
   */
  static async start(args: string[], agent?: Peer['agent'], prefix?: string[]): Promise<ServerProcess> {
    installCleanup()
    const role = args[0]
    if (role !== 'master' && role !== 'keeper') throw new Error(`ServerProcess starts a master or a keeper, not "${role}"`)
    const node = new NodeProcess({name: role, role, args, prefix, detached: false, readyTimeoutMs: SERVER_READY_TIMEOUT_MS, stopTimeoutMs: SERVER_STOP_TIMEOUT_MS, agent})
    try {
      await node.start()
    } catch (error) {
      throw new Error(`dfs ${args.join(' ')} did not start: ${(error as Error).message}\n${indent(node.lines.slice(-40))}`, {cause: error})
    }

    const server = new ServerProcess(node, node.url!, node.id ?? 'master')
    servers.add(server)
    return server
  }

  /** Sends a signal (SIGKILL after 30 s if it was another) and waits for the process to exit; returns its exit code, null if a signal ended it. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const exit = await this.node.stop(signal)
    return exit?.code ?? null
  }

  /** Who it is, for people. */
  describe(): string {
    const state = this.exited ? `, exited (${this.child.signalCode ?? `code ${this.child.exitCode}`})` : ''
    return `${this.id === 'master' ? 'master' : `keeper ${this.id}`} pid ${this.child.pid} ${this.url}${state}`
  }
}

/** Where a server runs: the command that runs node for it (a network namespace) and the flags that make it listen and be reached there. */
export interface Placement {
  prefix: string[]
  args: string[]
}

/** Where each server of a cluster runs, and the CLI (test/net/lab.ts makes one per host). */
export interface ClusterPlacement {
  master: Placement
  /** Keeper `index` (0-based, in the order they were added; a restart keeps its index). */
  keeper(index: number): Placement
  /** The prefix the cluster's dfs() runs the CLI with. */
  client: string[]
}

export interface ClusterOptions {
  keepers?: number
  replicas?: number
  masterArgs?: string[]
  keeperArgs?: string[]
  /** Serve https, with the private CA and certificate `cluster up --tls` makes (in DIR/tls); the CLI gets --ca. */
  tls?: boolean
  /** Servers and CLI elsewhere than on loopback in this process's namespace. */
  placement?: ClusterPlacement
}

/**
 * A master and keepers in one temp dir, all holding the cluster key `DIR/secret` (secure by
 * default, as a real cluster is); `stop` ends every process and removes the dir.
 */
export class TestCluster {
  master!: ServerProcess
  readonly keepers: ServerProcess[] = []
  readonly keeperDirs: string[] = []
  masterPort = 0
  /** An admin client token of this cluster, which its dfs() and master calls show. */
  token = ''
  /** Every server it started, restarted ones too, so that stop() leaves none running. */
  readonly #started: ServerProcess[] = []
  /** With tls: the CA, certificate and keys, and a connection pool that trusts the CA. */
  tls?: LocalCertificates & {agent: Peer['agent']}
  /** The data dir of every keeper id this cluster has run, its own keepers and those a test started beside them. */
  readonly #keeperDataDirs = new Map<string, string>()

  private constructor(
    readonly dir: string,
    readonly options: ClusterOptions,
  ) {}

  /** Starts a master and its keepers; if one fails, whatever did start is stopped and the dir removed. */
  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(await tempDir(), options)
    try {
      await createKeyFile(cluster.secretFile)
      cluster.token = (await mintClientToken(await ClusterKey.load(cluster.secretFile), {scope: 'admin', ttlMs: 24 * 60 * 60 * 1000})).token
      if (options.tls) {
        const files = await ensureLocalCertificates(join(cluster.dir, 'tls'))
        cluster.tls = {...files, agent: connectionPool(await readFile(files.ca))}
      }

      await cluster.startMaster()
      // Every start settles before the cleanup, so that none comes up after it.
      const started = await Promise.allSettled(Array.from({length: options.keepers ?? 4}, () => cluster.addKeeper()))
      const failed = started.find((outcome) => outcome.status === 'rejected')
      if (failed) throw failed.reason
    } catch (error) {
      await cluster.stop()
      throw error
    }

    return cluster
  }

  get masterUrl(): string {
    return this.master.url
  }

  /** The cluster key every server of this cluster is started with. */
  get secretFile(): string {
    return join(this.dir, 'secret')
  }

  /** Starts the master (with `extraArgs` besides the cluster's); after the first start it comes back on the same port and data dir. */
  async startMaster(extraArgs: string[] = []): Promise<ServerProcess> {
    this.master = await ServerProcess.start([
      'master',
      '--port', String(this.masterPort),
      '--data', join(this.dir, 'master'),
      '--replicas', String(this.options.replicas ?? 3),
      '--secret-file', this.secretFile,
      ...this.#tlsArgs(),
      ...withDefaults(this.options.masterArgs, {'--heartbeat-timeout': FAST.heartbeatTimeout, '--replication-interval': FAST.replicationInterval}),
      ...extraArgs,
      ...(this.options.placement?.master.args ?? []),
    ], this.tls?.agent, this.options.placement?.master.prefix)
    this.#started.push(this.master)
    this.masterPort = Number(new URL(this.master.url).port)
    return this.master
  }

  /** Starts a keeper with a fresh data dir, or restarts one on the data dir it had. */
  async addKeeper(dataDir?: string): Promise<ServerProcess> {
    const dir = dataDir ?? join(this.dir, `keeper-${this.keeperDirs.length + 1}`)
    if (!this.keeperDirs.includes(dir)) this.keeperDirs.push(dir)
    const index = this.keeperDirs.indexOf(dir)
    const placement = this.options.placement?.keeper(index)
    const keeper = await ServerProcess.start([
      'keeper',
      '--master', this.masterUrl,
      '--data', dir,
      '--secret-file', this.secretFile,
      ...this.#tlsArgs(),
      ...withDefaults(this.options.keeperArgs, {'--heartbeat-interval': FAST.heartbeatInterval}),
      ...(placement?.args ?? []),
    ], this.tls?.agent, placement?.prefix)
    this.#started.push(keeper)
    this.keepers[index] = keeper
    this.noteKeeperDataDir(keeper.id, dir)
    return keeper
  }

  /** Records where a keeper started outside addKeeper (behind a proxy, with odd flags) keeps its data, for blobPath. */
  noteKeeperDataDir(keeperId: string, dataDir: string): void {
    this.#keeperDataDirs.set(keeperId, dataDir)
  }

  #tlsArgs(): string[] {
    return this.tls ? ['--tls-cert', this.tls.cert, '--tls-key', this.tls.key, '--ca', this.tls.ca] : []
  }

  keeperById(id: string): ServerProcess {
    const keeper = this.keepers.find((candidate) => candidate.id === id)
    if (!keeper) throw new Error(`no keeper ${id} in this cluster`)
    return keeper
  }

  dataDirOf(keeper: ServerProcess): string {
    return this.keeperDirs[this.keepers.indexOf(keeper)]!
  }

  /** The blob of file `fileId` on keeper `keeperId`'s disk (running or not): the master does not know where it is. */
  blobPath(keeperId: string, fileId: string): string {
    const dataDir = this.#keeperDataDirs.get(keeperId)
    if (dataDir === undefined) throw new Error(`no keeper ${keeperId} ran in this cluster`)
    return blobPath(dataDir, fileId)
  }

  /** The flags that point a dfs command this test runs itself at this cluster's master, with its admin token. */
  get clientFlags(): string[] {
    return ['--master', this.masterUrl, '--token', this.token, ...this.#caFlags()]
  }

  #caFlags(): string[] {
    return this.tls ? ['--ca', this.tls.ca] : []
  }

  /** Runs the CLI against this cluster's master, with its admin token (DFS_TOKEN). */
  dfs(args: string[]): Promise<RunResult> {
    return dfs([...args, '--master', this.masterUrl, ...this.#caFlags()], {env: {DFS_TOKEN: this.token}, prefix: this.options.placement?.client})
  }

  dfsJson<T>(args: string[]): Promise<T> {
    return dfsJson<T>([...args, '--master', this.masterUrl, ...this.#caFlags()], {env: {DFS_TOKEN: this.token}, prefix: this.options.placement?.client})
  }

  /** json() on this cluster's master (`path`: /files, …), showing its admin token. */
  masterJson<T>(path: string, init: RequestInit = {}): Promise<{status: number; body: T}> {
    return json<T>(`${this.masterUrl}${path}`, {...this.#overTls(), ...init, headers: {...bearer(this.token), ...(init.headers as Record<string, string> | undefined)}})
  }

  /**
   * A grant for `op` on generation `fileId` of `name` at one keeper, minted from the cluster key as
   * the master mints them: for a test's own request about a file the master would grant nothing
   * for (one it never recorded or already forgot, an upload it never ticketed).
   */
  async grant(op: GrantOp, keeperId: string, file: {name: string; fileId: string; size?: number; sha256?: string}): Promise<string> {
    const {name, fileId, size = 0, sha256 = '0'.repeat(64)} = file
    return mintGrant(await ClusterKey.load(this.secretFile), {op, fileId, name, size, sha256, keeperId})
  }

  async stat(name: string): Promise<{name: string; fileId: string; size: number; sha256: string; replicas: Array<{keeper: string; url: string; alive: boolean; grant?: string}>}> {
    const {status, body} = await this.masterJson<any>(`/files/${encodeURIComponent(name)}`)
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
    return (await this.masterJson<any>('/keepers')).body.keepers
  }

  /** For fetch: node's fetch takes an undici dispatcher, here one that trusts the cluster's CA. */
  #overTls(): RequestInit | undefined {
    return this.tls ? ({dispatcher: this.tls.agent} as RequestInit) : undefined
  }

  async stop(): Promise<void> {
    await Promise.all(this.#started.map((server) => server.stop('SIGKILL')))
    await rm(this.dir, {recursive: true, force: true})
  }

  /** Every process's whole log, for people; a failing test prints the tails on its own. */
  async dumpLogs(): Promise<string> {
    return [this.master, ...this.keepers]
      .filter(Boolean)
      .map((server) => `--- ${server.describe()}\n${server.logs.join('\n')}`)
      .join('\n')
  }
}

/** `args` plus each default flag that `args` does not set itself. */
function withDefaults(args: string[] = [], defaults: Record<string, string>): string[] {
  const extra = Object.entries(defaults).filter(([flag]) => !args.includes(flag)).flat()
  return [...args, ...extra]
}

/**
 * For a suite whose tests each need a fresh cluster: a temp work dir for the suite, and whatever
 * clusters a test started are stopped after it, pass or fail.
 */
export function clusterPerTest(): {start(options?: ClusterOptions): Promise<TestCluster>; readonly work: string} {
  const current: TestCluster[] = []
  let work = ''
  before(async () => {
    work = await tempDir()
  })
  afterEach(async () => {
    await Promise.all(current.splice(0).map((cluster) => cluster.stop()))
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })
  return {
    async start(options) {
      const cluster = await TestCluster.start(options)
      current.push(cluster)
      return cluster
    },
    get work() {
      return work
    },
  }
}

/**
 * For a suite whose tests only use one cluster (store, read, ask; no kill, restart, pause or flag
 * of their own): one cluster for the whole suite, started before its first test and stopped after
 * its last, which saves a master and its keepers per test. Each test must use names (and local
 * paths) of its own, so that it passes alone and in any order; a test that stops one of the
 * cluster's servers fails, since the tests after it would run on another cluster than they think.
 * Call it inside a describe: a root-level after hook runs after the harness killed what still runs.
 */
export function clusterPerSuite(options: ClusterOptions = {}): {readonly cluster: TestCluster; readonly work: string} {
  let cluster: TestCluster | undefined
  let work = ''
  before(async () => {
    work = await tempDir()
    cluster = await TestCluster.start(options)
  })
  afterEach(() => {
    const stopped = cluster ? [cluster.master, ...cluster.keepers].filter((server) => server.exited) : []
    if (stopped.length > 0) throw new Error(`a test stopped a server of the suite's shared cluster (${stopped.map((server) => server.describe()).join('; ')}): such a test needs clusterPerTest`)
  })
  after(async () => {
    await cluster?.stop()
    await rm(work, {recursive: true, force: true})
  })
  return {
    get cluster() {
      if (!cluster) throw new Error('the shared cluster is there only inside the suite\'s tests')
      return cluster
    },
    get work() {
      return work
    },
  }
}

export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T
}

// When a test fails, the tail of what each server said during it is printed after the failure:
// the servers that ran during the test, from the line each was at when the test started. After
// the last test of the file, what still runs is killed: it would keep the process from exiting.

/** Servers that may have run during the current test. */
const servers = new Set<ServerProcess>()
/** How many lines each server had printed when the current test started. */
const linesAtStart = new Map<ServerProcess, number>()
const TAIL_LINES = 60

// Only in a test process: registering a hook makes node:test report on any program that imports
// this file (the chaos run does), and a test process is one the runner started or a *.test.js.
const UNDER_TEST = process.env.NODE_TEST_CONTEXT !== undefined || /\.test\.[cm]?js$/.test(process.argv[1] ?? '')
if (UNDER_TEST) {
  beforeEach(() => {
    linesAtStart.clear()
    for (const server of servers) {
      if (server.exited) servers.delete(server)
      else linesAtStart.set(server, server.logs.length)
    }
  })
  afterEach((t) => {
    // Node 20 has context.passed (since 20.12); @types/node 20 does not declare it yet.
    if ((t as {passed?: boolean}).passed !== false || servers.size === 0) return
    const parts = [...servers].map((server) => {
      // The last lines, with where the test began among them: a shared cluster may have said
      // nothing during the test, and then what it said before is what there is to see.
      const from = Math.max(0, server.logs.length - TAIL_LINES)
      const began = linesAtStart.get(server) ?? 0
      const shown = server.logs.slice(from).map((line) => `  | ${clip(line)}`)
      if (began >= from) shown.splice(began - from, 0, '  --- the test began here')
      return `--- ${server.describe()}: its last ${server.logs.length - from} of ${server.logs.length} lines\n${shown.join('\n')}`
    })
    process.stderr.write(`\nserver logs of the failed test "${t.name}":\n${parts.join('\n')}\n`)
  })
  // Every suite of the file and its after hooks have run by then. Being registered at import, it
  // runs before any root-level after hook of the test file: a shared cluster stopped there (no file
  // does that today) would be found killed already, with a warning and no harm done.
  after(() => killLeftovers('after the last test of the file'))
}

// A file stopped by the runner (it outlived --test-timeout) shows what its servers were doing.
reportOnSignal(() =>
  [...servers]
    .filter((server) => !server.exited)
    .map((server) => `--- ${server.describe()}: its last lines\n${indent(server.logs.slice(-TAIL_LINES))}`)
    .join('\n'),
)

function indent(lines: string[]): string {
  return lines.map((line) => `  | ${clip(line)}`).join('\n')
}

function clip(line: string): string {
  return line.length > 500 ? `${line.slice(0, 500)}…` : line
}
