// A dfs cluster on loopback for the bench: one master and N keepers, each a child process of
// bin/run.js with its own temp data directory, started by dfs's one launcher (NodeProcess, as
// `cluster up` and the tests do), plus the small HTTP calls the bench makes to it.

import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {setTimeout as sleep} from 'node:timers/promises'

import {Agent, request} from 'undici'

import {mintClientToken} from '../src/lib/client-tokens.js'
import {ClusterKey, createKeyFile} from '../src/lib/cluster-key.js'
import {grantUrl} from '../src/lib/grants.js'
import type {FileInfo, FileSummary, KeeperInfo, ListResponse} from '../src/lib/protocol.js'
import {NodeProcess, type NodeRole} from '../src/roles/cluster/node-process.js'
import type {ClusterPlacement, Placement} from '../test/helpers/cluster.js'

import {cpuSeconds, lastLines, peakRssMB, removeTempDir, trackTempDir} from './processes.js'

export interface ClusterOptions {
  /** A fresh directory for the cluster's data; removed on stop. */
  dir: string
  keepers: number
  replicas: number
  /** Duration strings passed to the CLI: "1s", "200ms". */
  heartbeatTimeout: string
  heartbeatInterval: string
  replicationInterval: string
  /** Extra node arguments per role (e.g. --cpu-prof). */
  nodeArgs?: {master?: string[]; keeper?: string[]}
  /**
   * Where the master and each keeper run (bench/net.ts: one network namespace each, see
   * test/net/lab.ts); on loopback without it.
   */
  placement?: Omit<ClusterPlacement, 'client'>
  /**
   * With a cluster key (the default, as a real cluster runs): tokens, grants and member
   * credentials. false: no key at all, which a master allows on loopback only; nothing is checked.
   */
  auth?: boolean
}

export interface KeeperProcess {
  id: string
  url: string
  dir: string
  node: NodeProcess
  /** What started it, to start it again on the same data (restartKeeper). */
  launch: () => NodeProcess
  /** Set once the bench has SIGKILLed it. */
  killed?: boolean
}

// The protocol's own types: the bench reads the same bodies the CLI does.
export type {FileInfo, FileSummary, KeeperInfo}

const agent = new Agent({keepAliveTimeout: 30_000, connections: 4})

export class Cluster {
  #stopping = false
  readonly #crashes: string[] = []

  private constructor(
    readonly options: ClusterOptions,
    readonly masterUrl: string,
    public master: NodeProcess,
    readonly keepers: KeeperProcess[],
    /** Starts the master again on its data and port, with another replica target if given (restartMaster). */
    readonly relaunchMaster: (replicas?: number) => NodeProcess,
  ) {
    this.#watch(master, 'the master', () => false)
    for (const [index, keeper] of keepers.entries()) this.#watch(keeper.node, `keeper ${index + 1} ${keeper.id}`, () => keeper.killed === true)
  }

  #watch(node: NodeProcess, what: string, killed: () => boolean): void {
    void node.exited?.then(({code, signal}) => {
      if (!this.#stopping && !killed() && !this.#restarting.has(node)) {
        this.#crashes.push(`${what} (pid ${node.pid}) exited unexpectedly (${code ?? signal}): ${lastLines(node.lines.join('\n'), 8)}`)
      }
    })
  }

  readonly #restarting = new Set<NodeProcess>()

  /**
   * Stops the master (SIGTERM) and starts it again on the same data and port, with another
   * replica target if given; resolves once it says it listens and GET /health answers.
   * Returns performance.now() just before the new process was spawned.
   */
  async restartMaster(replicas?: number): Promise<number> {
    this.#restarting.add(this.master)
    await this.master.stop()
    const node = this.relaunchMaster(replicas)
    const spawnedAt = performance.now()
    await node.start()
    this.master = node
    this.#watch(node, 'the master', () => false)
    return spawnedAt
  }

  /** Stops a keeper (SIGTERM) and starts it again on the same data; returns the moment of the spawn. */
  async restartKeeper(keeper: KeeperProcess): Promise<number> {
    this.#restarting.add(keeper.node)
    await keeper.node.stop()
    const node = keeper.launch()
    const spawnedAt = performance.now()
    await node.start()
    keeper.node = node
    keeper.url = node.url!
    this.#watch(node, `keeper ${keeper.id}`, () => keeper.killed === true)
    return spawnedAt
  }

  /** Adds what went wrong in the cluster to an error of the bench, if anything did and it is not said yet. */
  explain(error: unknown): unknown {
    const report = this.crashReport()
    if (!report || !(error instanceof Error) || error.message.includes(report)) return error
    error.message += report
    return error
  }

  /** What went wrong in the cluster itself, to add to an error message. */
  crashReport(): string {
    return this.#crashes.length > 0 ? `\n  cluster: ${this.#crashes.join('\n  cluster: ')}` : ''
  }

  /** Starts the master, then every keeper at once; resolves when all serve. If one cannot, those started are stopped. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    trackTempDir(options.dir)
    await mkdir(options.dir, {recursive: true})
    // Auth on unless asked otherwise, as in a real cluster: what the bench measures includes what credentials cost.
    const auth = options.auth ?? true
    const secretFile = join(options.dir, 'secret')
    if (auth) {
      await createKeyFile(secretFile)
      // The bench's dfs commands (its children inherit the environment) and its own master calls show an admin token.
      process.env.DFS_TOKEN = (await mintClientToken(await ClusterKey.load(secretFile), {scope: 'admin', ttlMs: 24 * 60 * 60 * 1000})).token
    } else {
      // No token either: a keyless cluster's clients send none.
      delete process.env.DFS_TOKEN
    }

    const keyArgs = auth ? ['--secret-file', secretFile] : []
    const started: NodeProcess[] = []
    const create = (name: string, role: NodeRole, args: string[], placement?: Placement): NodeProcess => {
      const node = new NodeProcess({
        name,
        role,
        args: [...args, ...(placement?.args ?? []), '--log-level', 'warn'],
        prefix: placement?.prefix,
        nodeArgs: options.nodeArgs?.[role],
        // --cpu-prof writes its profiles here unless told a directory.
        cwd: options.dir,
        // Ctrl-C reaches the servers too; the bench's handlers kill them anyway.
        detached: false,
        keepLines: 200,
        readyTimeoutMs: 30_000,
        stopTimeoutMs: 10_000,
      })
      started.push(node)
      return node
    }

    const launch = async (name: string, role: NodeRole, args: string[], placement?: Placement): Promise<NodeProcess> => {
      const node = create(name, role, args, placement)
      try {
        await node.start()
      } catch (error) {
        throw new Error(`${(error as Error).message}: ${lastLines(node.lines.join('\n'))}`, {cause: error})
      }

      return node
    }

    const masterArgs = (port: string, replicas: number) => [
      'master',
      '--port', port,
      '--data', join(options.dir, 'master'),
      '--replicas', String(replicas),
      '--heartbeat-timeout', options.heartbeatTimeout,
      '--replication-interval', options.replicationInterval,
      ...keyArgs,
    ]
    try {
      const master = await launch('the master', 'master', masterArgs('0', options.replicas), options.placement?.master)
      const masterUrl = master.url!
      const relaunchMaster = (replicas = options.replicas) => create('the master', 'master', masterArgs(new URL(masterUrl).port, replicas), options.placement?.master)
      const keepers = await Promise.all(
        Array.from({length: options.keepers}, async (_, index): Promise<KeeperProcess> => {
          const dir = join(options.dir, `keeper-${index + 1}`)
          const placement = options.placement?.keeper(index)
          const args = [
            'keeper',
            '--master', masterUrl,
            '--data', dir,
            // A placed keeper has its port in its placement, to advertise it.
            ...(placement ? [] : ['--port', '0']),
            '--heartbeat-interval', options.heartbeatInterval,
            ...keyArgs,
          ]
          const node = await launch(`keeper ${index + 1}`, 'keeper', args, placement)
          return {id: node.id!, url: node.url!, dir, node, launch: () => create(`keeper ${index + 1}`, 'keeper', args, placement)}
        }),
      )
      const cluster = new Cluster(options, masterUrl, master, keepers, relaunchMaster)
      // Every keeper alive at the master before anything is measured.
      await cluster.until(async () => (await cluster.status()).filter((keeper) => keeper.alive).length === options.keepers, 'every keeper alive', 20_000)
      return cluster
    } catch (error) {
      await Promise.all(started.map((node) => node.stop('SIGKILL')))
      throw error
    }
  }

  async #get<T>(path: string, as: 'json' | 'text' = 'json'): Promise<T | undefined> {
    let response
    try {
      const token = process.env.DFS_TOKEN
      const headers = token ? {authorization: `Bearer ${token}`} : {}
      response = await request(`${this.masterUrl}${path}`, {dispatcher: agent, headers, headersTimeout: 30_000, bodyTimeout: 30_000})
    } catch (error) {
      throw new Error(`master GET ${path}: ${(error as Error).message}${this.crashReport()}`, {cause: error})
    }

    if (response.statusCode === 404) {
      await response.body.dump()
      return undefined
    }

    if (response.statusCode !== 200) throw new Error(`master GET ${path} answered ${response.statusCode}: ${await response.body.text()}`)
    return (as === 'json' ? await response.body.json() : await response.body.text()) as T
  }

  /**
   * A URL that reads `name` from one alive replica with nothing but HTTP, as a browser or curl
   * would: with the read grant the master hands out when the cluster has a key.
   */
  async readUrl(name: string): Promise<string> {
    const replica = (await this.fileInfo(name))?.replicas.find((candidate) => candidate.alive)
    if (!replica) throw new Error(`no alive replica of ${name}`)
    return replica.grant ? grantUrl(replica.url, name, replica.grant) : `${replica.url}/files/${encodeURIComponent(name)}`
  }

  /** The master's record of a file, or undefined before it is committed. */
  fileInfo(name: string): Promise<FileInfo | undefined> {
    return this.#get<FileInfo>(`/files/${encodeURIComponent(name)}`)
  }

  async list(): Promise<FileSummary[]> {
    return (await this.#get<{files: FileSummary[]}>('/files'))?.files ?? []
  }

  /** One page of the listing (GET /files?limit=&after=). */
  async listPage(query: {limit: number; after?: string}): Promise<ListResponse> {
    const search = new URLSearchParams({limit: String(query.limit), ...(query.after === undefined ? {} : {after: query.after})})
    return (await this.#get<ListResponse>(`/files?${search}`)) ?? {files: []}
  }

  /** CPU time (user + system, seconds) the master and the keepers still running have used so far. */
  cpuSeconds(): {master: number; keepers: number} {
    const keepers = this.keepers.filter((keeper) => !keeper.killed).map((keeper) => cpuSeconds(keeper.node.pid!) ?? 0)
    return {master: cpuSeconds(this.master.pid!) ?? 0, keepers: keepers.reduce((sum, seconds) => sum + seconds, 0)}
  }

  /** The value of one unlabelled metric of the master's /metrics. */
  async metric(name: string): Promise<number> {
    const text = await this.#get<string>('/metrics', 'text')
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text ?? '')
    if (!match) throw new Error(`the master's /metrics has no ${name}`)
    return Number(match[1])
  }

  async status(): Promise<KeeperInfo[]> {
    return (await this.#get<{keepers: KeeperInfo[]}>('/keepers'))?.keepers ?? []
  }

  /** Polls `check` every `intervalMs` until it holds; returns the moment (performance.now()) it was seen. */
  async until(check: () => Promise<boolean>, what: string, timeoutMs: number, intervalMs = 20): Promise<number> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      if (await check()) return performance.now()
      if (performance.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`)
      this.#assertRunning()
      await sleep(intervalMs)
    }
  }

  /** Moment the file `name` has `count` alive replicas (polling GET /files/NAME). */
  untilReplicas(name: string, count: number, timeoutMs: number, intervalMs = 20): Promise<number> {
    return this.until(
      async () => ((await this.fileInfo(name))?.replicas.filter((replica) => replica.alive).length ?? 0) >= count,
      `"${name}" to have ${count} alive replicas`,
      timeoutMs,
      intervalMs,
    )
  }

  /** Moment all of `names` have `count` alive replicas (polling GET /files). */
  untilAllReplicated(names: Set<string>, count: number, timeoutMs: number, intervalMs = 50): Promise<number> {
    return this.until(
      async () => {
        let done = 0
        for (const file of await this.list()) if (names.has(file.name) && file.replicas >= count) done++
        return done === names.size
      },
      `${names.size} files to have ${count} alive replicas`,
      timeoutMs,
      intervalMs,
    )
  }

  #assertRunning(): void {
    if (this.#crashes.length > 0) throw new Error(`the cluster broke:${this.crashReport()}`)
  }

  /** Peak RSS (VmHWM) so far, in MB: the master and the largest keeper. */
  peakRss(): {master: number | undefined; keeper: number | undefined} {
    const keepers = this.keepers.filter((keeper) => !keeper.killed).map((keeper) => peakRssMB(keeper.node.pid!) ?? 0)
    return {master: peakRssMB(this.master.pid!), keeper: keepers.length > 0 ? Math.max(...keepers) : undefined}
  }

  /** SIGKILL, as a crash: no goodbye to the master. */
  killKeeper(keeper: KeeperProcess): void {
    keeper.killed = true
    keeper.node.signal('SIGKILL')
  }

  /** Stops every process (SIGTERM, so that --cpu-prof profiles are written) and removes the data. */
  async stop(): Promise<void> {
    this.#stopping = true
    await Promise.all(this.keepers.map((keeper) => keeper.node.stop()))
    await this.master.stop()
    await removeTempDir(this.options.dir)
  }
}
