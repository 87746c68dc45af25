import {checkListenWithoutKey, type ClusterKey} from '../../lib/cluster-key.js'
import {DEFAULTS} from '../../lib/config.js'
import {lockDataDir} from '../../lib/data-dir-lock.js'
import {closeGracefully} from '../../lib/http-server.js'
import {memberCredentials, newMember} from '../../lib/member-auth.js'
import {createRegistry} from '../../lib/metrics.js'
import {Peer, connectionPool} from '../../lib/peer-client.js'
import type {ServerTls} from '../../lib/tls.js'
import {Keeper} from './keeper.js'
import {Scrubber} from './scrubber.js'
import {createKeeperServer} from './server.js'

export interface StartKeeperOptions {
  master: string
  dataDir: string
  /** Its failure domain, told to the master at each registration. */
  zone: string
  host: string
  port: number
  /** The URL other machines reach this keeper at; by default built from host and port. */
  advertise?: string
  heartbeatIntervalMs: number
  /** How long an upload (a client's, or a pipelined upload's hop) or a copy between keepers may go without a byte before it is cut off. */
  stallTimeoutMs: number
  /** Pause between scrub passes over every stored file. */
  scrubIntervalMs: number
  /** Read rate of the scrubber, in bytes per second. */
  scrubBytesPerSecond: number
  logLevel: string
  /** The cluster's shared key: its calls to the master prove membership with it, and it takes orders only from a member master. */
  clusterKey?: ClusterKey
  /** Listen beyond loopback without a cluster key. */
  insecure: boolean
  /** Serve https with this certificate and key (and advertise an https URL). */
  tls?: ServerTls
  /** The authority the master's and other keepers' https certificates must chain to; by default the system's. */
  ca?: Buffer
  /** Serve /metrics without a client token even with a cluster key. */
  metricsPublic?: boolean
}

export interface RunningKeeper {
  id: string
  url: string
  /** A line to show the operator loudly: it runs without protection. */
  warning?: string
  stop(): Promise<void>
}

/** Locks and opens the data directory, starts serving, registers with the master and starts heartbeats. */
export async function startKeeper(options: StartKeeperOptions): Promise<RunningKeeper> {
  const warning = checkListenWithoutKey('keeper', options.host, options.clusterKey, options.insecure)
  const lock = await lockDataDir(options.dataDir, 'keeper')
  try {
    return {...(await serve(options, lock.release)), warning}
  } catch (error) {
    await lock.release()
    throw error
  }
}

async function serve(options: StartKeeperOptions, unlock: () => Promise<void>): Promise<RunningKeeper> {
  let app: ReturnType<typeof createKeeperServer> | undefined
  const self = newMember('keeper')
  const key = options.clusterKey
  // The keeper's id comes from its first registration: each credential names the id of its moment.
  const credentials = key ? memberCredentials(key, () => ({...self, keeperId: keeper.id || undefined}), 'master') : undefined
  const keeper: Keeper = await Keeper.open({
    // Pulls from other keepers go over the same pool (keeper.ts), so it trusts --ca for them too.
    master: new Peer({role: 'master', baseUrl: options.master, credentials, agent: options.ca ? connectionPool(options.ca) : undefined}),
    clusterKey: key,
    dataDir: options.dataDir,
    zone: options.zone,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    stallTimeoutMs: options.stallTimeoutMs,
    log: (message) => app?.log.info(message),
    registry: createRegistry(),
    metricsPublic: options.metricsPublic,
  })
  app = createKeeperServer(keeper, options.logLevel, options.tls)
  for (const {fileId, reason} of keeper.store.quarantined) app.log.warn(`blob ${fileId} quarantined, not served or reported: ${reason}`)
  await app.listen({host: options.host, port: options.port})
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  const url = options.advertise ?? `${options.tls ? 'https' : 'http'}://${urlHost(options.host)}:${port}`
  try {
    await keeper.register(url)
  } catch (error) {
    await app.close()
    throw error
  }

  keeper.startHeartbeats()
  const scrubber = new Scrubber(keeper, {intervalMs: options.scrubIntervalMs, bytesPerSecond: options.scrubBytesPerSecond})
  scrubber.start()
  const server = app
  return {
    id: keeper.id,
    url,
    async stop() {
      keeper.stop()
      scrubber.stop()
      await closeGracefully(server, DEFAULTS.keeperStopGraceMs)
      await unlock()
    },
  }
}

/** A wildcard listen address is no address to give others: advertise loopback unless told otherwise. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}
