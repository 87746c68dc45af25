import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {mintClientToken} from '../../lib/client-tokens.js'
import {ClusterKey, createKeyFile} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {isRunning} from '../../lib/data-dir-lock.js'
import {writePrivateFile} from '../../lib/durable-file.js'
import {DfsError} from '../../lib/errors.js'
import {connectionPool, type Peer} from '../../lib/peer-client.js'
import {ensureLocalCertificates, type LocalCertificates} from './local-certificates.js'
import {displayPath, NodeProcess, type NodeExit} from './node-process.js'

export {DFS_BIN, displayPath, NodeStartError, type NodeExit} from './node-process.js'
export {isRunning} from '../../lib/data-dir-lock.js'

export interface LocalClusterOptions {
  /** Everything lives here: master/, keeper-N/, logs/, cluster.json, the key (secret) and an admin token (token). */
  dir: string
  keepers: number
  /** Port of the master; 0 picks a free one. */
  port: number
  /** Extra master flags, e.g. ['--replicas', '2', '--replication-interval', '1s']. */
  masterArgs?: string[]
  /** Extra flags for every keeper, e.g. ['--heartbeat-interval', '200ms']. */
  keeperArgs?: string[]
  onEvent?: (event: ClusterEvent) => void
  /** The dfs executable; the one of this package by default. */
  bin?: string
  /** How long each child may take to serve. Default 60 s. */
  readyTimeoutMs?: number
  /** How long each child may take to stop after SIGTERM before SIGKILL. By default a little more than a keeper's grace for its transfers under way (35 s). */
  stopTimeoutMs?: number
  /** Serve https, with a private CA and a certificate for 127.0.0.1 and localhost in DIR/tls (made on the first run). */
  tls?: boolean
}

export type ClusterEvent =
  | {type: 'starting'; node: string; logFile: string}
  | {type: 'ready'; node: string; url: string; id?: string}
  | {type: 'stopping'; node: string}
  | {type: 'stopped'; node: string; exit: NodeExit}
  /** A child that nobody asked to stop has exited; the others keep running. */
  | {type: 'crashed'; node: string; id?: string; logFile: string; exit: NodeExit}

export interface ClusterNodeInfo {
  name: string
  id?: string
  url: string
  pid?: number
  logFile: string
}

export interface RunningLocalCluster {
  dir: string
  logDir: string
  masterUrl: string
  master: ClusterNodeInfo
  keepers: ClusterNodeInfo[]
  stop(): Promise<void>
}

/** What cluster.json holds while a cluster runs from a directory. */
export interface ClusterState {
  pid: number
  startedAt: string
  masterUrl?: string
  nodes: Array<{name: string; pid?: number; url?: string; id?: string}>
}

/**
 * A master and N keepers run as child processes from one directory, each with its data dir and
 * log file there, so running it again on the same directory brings back the same files and keeper
 * ids. The steps are separate (prepare, startMaster, startKeeper, stop) so a UI can show each one;
 * startLocalCluster runs them all.
 */
export class LocalCluster {
  readonly dir: string
  readonly logDir: string
  readonly keeperCount: number
  master?: NodeProcess
  readonly keepers: Array<NodeProcess | undefined> = []
  #options: LocalClusterOptions
  #stopping?: Promise<void>
  /** Writes of cluster.json, one after another. */
  #stateWrites: Promise<void> = Promise.resolve()
  #stateCleared = false
  #startedAt = new Date().toISOString()
  #exitHandler = () => this.#signalAll('SIGTERM')
  /** With tls: the certificates, and a connection pool that trusts their CA (for the children's health checks). */
  #tls?: {files: LocalCertificates; agent: Peer['agent']}

  constructor(options: LocalClusterOptions) {
    if (!Number.isInteger(options.keepers) || options.keepers < 1) throw new DfsError('DFS_ERR_BAD_REQUEST', 'a cluster needs at least one keeper')
    this.#options = options
    this.dir = resolve(options.dir)
    this.logDir = join(this.dir, 'logs')
    this.keeperCount = options.keepers
  }

  get statePath(): string {
    return join(this.dir, 'cluster.json')
  }

  /** The cluster key, made on the first run; the master and every keeper get it. */
  get secretPath(): string {
    return join(this.dir, 'secret')
  }

  /** An admin client token, made afresh at every start. */
  get tokenPath(): string {
    return join(this.dir, 'token')
  }

  /** The CA certificate clients need (--ca), with tls. */
  get caPath(): string | undefined {
    return this.#tls?.files.ca
  }

  /** The master's URL once it serves. */
  get masterUrl(): string {
    if (!this.master?.url) throw new Error('the master has not started')
    return this.master.url
  }

  /** Every child that is still running. */
  get running(): NodeProcess[] {
    return [this.master, ...this.keepers].filter((node): node is NodeProcess => node?.alive === true)
  }

  /**
   * Creates the directories and claims the directory in cluster.json, refusing if another cluster
   * (or an orphaned child of an earlier one) still runs from it: two masters on one table would
   * corrupt it.
   */
  async prepare(): Promise<void> {
    await mkdir(this.logDir, {recursive: true})
    const previous = await readClusterState(this.dir)
    if (previous) {
      const where = displayPath(this.dir)
      if (previous.pid !== process.pid && isRunning(previous.pid)) {
        throw new DfsError('DFS_ERR_EXISTS', `a cluster is already running from ${where} (pid ${previous.pid}); stop it first`)
      }

      const orphans = previous.nodes.filter((node) => node.pid !== undefined && isRunning(node.pid))
      if (orphans.length > 0) {
        const list = orphans.map((node) => `${node.name} pid ${node.pid}`).join(', ')
        throw new DfsError(
          'DFS_ERR_EXISTS',
          `processes of an earlier cluster in ${where} still run (${list}): stop them, or delete ${displayPath(this.statePath)} if they are not dfs`,
        )
      }
    }

    await this.#prepareCredentials()
    if (this.#options.tls) {
      const files = await ensureLocalCertificates(join(this.dir, 'tls'))
      this.#tls = {files, agent: connectionPool(await readFile(files.ca))}
    }

    await this.#writeState()
    process.on('exit', this.#exitHandler)
  }

  /** Creates the key on the first run (checking it on later ones) and writes a fresh admin token. */
  async #prepareCredentials(): Promise<void> {
    try {
      await createKeyFile(this.secretPath)
    } catch (error) {
      if (!(error instanceof DfsError && error.code === 'DFS_ERR_EXISTS')) throw error
    }

    const key = await ClusterKey.load(this.secretPath)
    const {token} = await mintClientToken(key, {scope: 'admin', ttlMs: DEFAULTS.tokenTtlMs})
    await writePrivateFile(this.tokenPath, token + '\n', {replace: true})
  }

  /** Starts the master and waits until it serves. */
  async startMaster(): Promise<{url: string}> {
    const args = ['master', '--port', String(this.#options.port), '--data', join(this.dir, 'master'), '--secret-file', this.secretPath, ...this.#tlsArgs(), ...(this.#options.masterArgs ?? [])]
    this.master = this.#node('master', 'master', args)
    const {url} = await this.#start(this.master)
    return {url}
  }

  /** Starts keeper `index` (1-based) against the running master and waits until it has registered. */
  async startKeeper(index: number): Promise<{id: string; url: string}> {
    if (index < 1 || index > this.keeperCount) throw new RangeError(`keeper index ${index} is out of 1..${this.keeperCount}`)
    const name = `keeper-${index}`
    const args = ['keeper', '--master', this.masterUrl, '--data', join(this.dir, name), '--port', '0', '--secret-file', this.secretPath, ...this.#tlsArgs(), ...(this.#options.keeperArgs ?? [])]
    const node = this.#node(name, 'keeper', args)
    this.keepers[index - 1] = node
    const {id, url} = await this.#start(node)
    return {id: id!, url}
  }

  /** Stops the keepers (all at once), then the master; each gets SIGTERM, then SIGKILL after the stop timeout. */
  async stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await Promise.all(this.keepers.map((node) => (node ? this.stopNode(node) : undefined)))
      if (this.master) await this.stopNode(this.master)
      process.removeListener('exit', this.#exitHandler)
      await this.#clearState()
    })()
    return this.#stopping
  }

  /** Stops one child; for a UI that shows each one stopping. */
  async stopNode(node: NodeProcess): Promise<NodeExit | undefined> {
    if (!node.alive) return undefined
    this.#emit({type: 'stopping', node: node.name})
    const exit = await node.stop()
    if (exit) this.#emit({type: 'stopped', node: node.name, exit})
    return exit
  }

  /** Sends a signal to every child without waiting, e.g. SIGKILL when the user insists. */
  signalAll(signal: NodeJS.Signals): void {
    this.#signalAll(signal)
  }

  /** What was started, for printing. */
  info(): {master: ClusterNodeInfo; keepers: ClusterNodeInfo[]} {
    const describe = (node: NodeProcess): ClusterNodeInfo => ({name: node.name, id: node.id, url: node.url ?? '', pid: node.pid, logFile: this.#logFile(node.name)})
    if (!this.master) throw new Error('the master has not started')
    return {master: describe(this.master), keepers: this.keepers.filter((node) => node !== undefined).map(describe)}
  }

  /** Every child serves https with the one certificate, and trusts the CA for the others'. */
  #tlsArgs(): string[] {
    if (!this.#tls) return []
    const {files} = this.#tls
    return ['--tls-cert', files.cert, '--tls-key', files.key, '--ca', files.ca]
  }

  #node(name: string, role: 'master' | 'keeper', args: string[]): NodeProcess {
    return new NodeProcess({
      name,
      role,
      args,
      logFile: this.#logFile(name),
      bin: this.#options.bin,
      readyTimeoutMs: this.#options.readyTimeoutMs ?? 60_000,
      stopTimeoutMs: this.#options.stopTimeoutMs ?? DEFAULTS.keeperStopGraceMs + 5000,
      agent: this.#tls?.agent,
      onExit: (node, exit, expected) => {
        if (!expected) this.#emit({type: 'crashed', node: node.name, id: node.id, logFile: this.#logFile(node.name), exit})
        void this.#saveState()
      },
    })
  }

  async #start(node: NodeProcess): Promise<{url: string; id?: string}> {
    if (this.#stopping) throw new DfsError('DFS_ERR_SHUTTING_DOWN', 'the cluster is stopping')
    this.#emit({type: 'starting', node: node.name, logFile: this.#logFile(node.name)})
    const started = node.start()
    // Record the pid at once so an orphan can be found even if we die during startup.
    await this.#saveState()
    const ready = await started
    this.#emit({type: 'ready', node: node.name, url: ready.url, id: ready.id})
    await this.#saveState()
    return ready
  }

  #logFile(name: string): string {
    return join(this.logDir, `${name}.log`)
  }

  #signalAll(signal: NodeJS.Signals): void {
    for (const node of [...this.keepers, this.master]) node?.signal(signal)
  }

  #emit(event: ClusterEvent): void {
    this.#options.onEvent?.(event)
  }

  #saveState(): Promise<void> {
    this.#stateWrites = this.#stateWrites.then(() => this.#writeState()).catch(() => {})
    return this.#stateWrites
  }

  async #writeState(): Promise<void> {
    if (this.#stateCleared) return
    const state: ClusterState = {
      pid: process.pid,
      startedAt: this.#startedAt,
      masterUrl: this.master?.url,
      nodes: [this.master, ...this.keepers]
        .filter((node): node is NodeProcess => node !== undefined)
        .map((node) => ({name: node.name, pid: node.alive ? node.pid : undefined, url: node.url, id: node.id})),
    }
    await writeFile(this.statePath, JSON.stringify(state, null, 2) + '\n')
  }

  #clearState(): Promise<void> {
    this.#stateWrites = this.#stateWrites.then(async () => {
      this.#stateCleared = true
      const state = await readClusterState(this.dir)
      if (state?.pid === process.pid) await rm(this.statePath, {force: true})
    })
    return this.#stateWrites
  }
}

/**
 * Starts a master and N keepers from `dir` and resolves once all serve; if any fails, the ones
 * already started are stopped and the error says which one and where its log is.
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<RunningLocalCluster> {
  const cluster = new LocalCluster(options)
  await cluster.prepare()
  try {
    await cluster.startMaster()
    await Promise.all(Array.from({length: cluster.keeperCount}, (_, index) => cluster.startKeeper(index + 1)))
  } catch (error) {
    await cluster.stop()
    throw error
  }

  const {master, keepers} = cluster.info()
  return {dir: cluster.dir, logDir: cluster.logDir, masterUrl: cluster.masterUrl, master, keepers, stop: () => cluster.stop()}
}

/** The cluster.json of a directory, if a cluster runs (or ran and died) from it. */
export async function readClusterState(dir: string): Promise<ClusterState | undefined> {
  try {
    return JSON.parse(await readFile(join(resolve(dir), 'cluster.json'), 'utf8')) as ClusterState
  } catch {
    return undefined
  }
}
