import {access, constants, mkdir} from 'node:fs/promises'

import {checkListenWithoutKey, type ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {lockDataDir} from '../../lib/data-dir-lock.js'
import {closeGracefully} from '../../lib/http-server.js'
import {createRegistry} from '../../lib/metrics.js'
import {connectionPool} from '../../lib/peer-client.js'
import type {ServerTls} from '../../lib/tls.js'
import {Master} from './master.js'
import {createMasterServer} from './server.js'
import {TableBackups} from './table-backups.js'

export interface StartMasterOptions {
  host: string
  port: number
  dataDir: string
  replicas: number
  heartbeatTimeoutMs: number
  replicationIntervalMs: number
  logLevel: string
  /** The cluster's shared key: keepers must prove they hold it, and the master's orders carry proof of it. */
  clusterKey?: ClusterKey
  /** Listen beyond loopback without a cluster key. */
  insecure: boolean
  /** Serve https with this certificate and key. */
  tls?: ServerTls
  /** The authority keepers' https certificates must chain to; by default the system's. */
  ca?: Buffer
  /** Rebuild a lost table from the keepers' inventories (see Master). */
  recover?: {windowMs: number; keepers?: number}
  /** Online backups of the table. */
  backups?: {dir: string; intervalMs: number; keep: number}
  /** Uploads begun and not committed, at most; by default DEFAULTS.maxPendingUploads. */
  maxPendingUploads?: number
  /** Serve /metrics without a client token even with a cluster key. */
  metricsPublic?: boolean
}

export interface RunningMaster {
  url: string
  /** A line to show the operator loudly: it runs without protection. */
  warning?: string
  stop(): Promise<void>
}

/** Locks the data dir, opens the table, starts serving and starts the liveness and replication loops. */
export async function startMaster(options: StartMasterOptions): Promise<RunningMaster> {
  const warning = checkListenWithoutKey('master', options.host, options.clusterKey, options.insecure)
  if (options.backups) await checkBackupDir(options.backups.dir)
  const lock = await lockDataDir(options.dataDir, 'master')
  try {
    return {...(await serve(options, lock.release)), warning}
  } catch (error) {
    await lock.release()
    throw error
  }
}

async function serve(options: StartMasterOptions, unlock: () => Promise<void>): Promise<RunningMaster> {
  let app: ReturnType<typeof createMasterServer> | undefined
  const log = {info: (message: string) => app?.log.info(message), warn: (message: string) => app?.log.warn(message)}
  const master = new Master({
    dataDir: options.dataDir,
    replicas: options.replicas,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    replicationIntervalMs: options.replicationIntervalMs,
    clusterKey: options.clusterKey,
    maxPendingUploads: options.maxPendingUploads,
    registry: createRegistry(),
    metricsPublic: options.metricsPublic,
    agent: options.ca ? connectionPool(options.ca) : undefined,
    log,
    recover: options.recover,
  })
  const backups = options.backups && new TableBackups(master.table, {...options.backups, log})
  app = createMasterServer(master, options.logLevel, options.tls)
  try {
    await app.listen({host: options.host, port: options.port})
  } catch (error) {
    await master.stop()
    throw error
  }

  master.start()
  backups?.start()
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  const host = options.host.includes(':') ? `[${options.host}]` : options.host
  const server = app
  return {
    url: `${options.tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    async stop() {
      await closeGracefully(server, DEFAULTS.masterStopGraceMs)
      await backups?.stop()
      await master.stop()
      await unlock()
    },
  }
}

/** A backup dir that cannot be written fails the start, not every backup later. */
async function checkBackupDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, {recursive: true})
    await access(dir, constants.W_OK)
  } catch (error) {
    throw new Error(`--backup-dir ${dir} cannot be written: ${(error as {code?: string}).code ?? (error as Error).message}`, {cause: error})
  }
}
