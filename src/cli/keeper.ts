import {DEFAULTS, parseHttpUrl, resolveMasterUrl} from '../lib/config.js'
import {DEFAULT_ZONE, ZONE_PATTERN} from '../lib/protocol.js'
import type {CommandIo} from './command-io.js'
import {
  type CommandSpec,
  type Parsed,
  caSpec,
  durationSpec,
  flag,
  insecureSpec,
  logLevelSpec,
  masterSpec,
  metricsPublicSpec,
  secretFileSpec,
  sizeSpec,
  tlsCertSpec,
  tlsKeySpec,
} from './flag-spec.js'

export const keeperSpec = {
  flags: {
    master: masterSpec,
    host: flag.string({description: 'address to listen on (0.0.0.0 for other machines)', default: DEFAULTS.host}),
    port: flag.integer({description: 'port to listen on (0 = any free port)', default: 0, min: 0, max: 65_535}),
    advertise: flag.string({description: 'URL other machines reach this keeper at', helpValue: 'URL'}),
    data: flag.string({description: 'directory for stored files and the keeper id', default: '.dfs/keeper'}),
    zone: flag.custom({
      description: "the failure domain it sits in (a rack, a room, a site): a file's replicas go into as many zones as there are",
      helpValue: 'NAME',
      default: DEFAULT_ZONE,
      parse(input: string): string {
        if (!ZONE_PATTERN.test(input)) throw new Error(`"${input}" is not a zone name: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`)
        return input
      },
    }),
    'heartbeat-interval': durationSpec('time between heartbeats', DEFAULTS.heartbeatIntervalMs),
    'stall-timeout': durationSpec('how long an upload (from a client, or down a write pipeline) or a copy between keepers may go without a byte before it is cut off', DEFAULTS.stallTimeoutMs),
    'scrub-interval': durationSpec('pause between background re-hashes of every stored file', DEFAULTS.scrubIntervalMs),
    'scrub-rate': sizeSpec('bytes per second the scrubber may read', DEFAULTS.scrubBytesPerSecond, '32MiB'),
    'log-level': logLevelSpec,
    'secret-file': secretFileSpec,
    insecure: insecureSpec,
    'metrics-public': metricsPublicSpec,
    'tls-cert': tlsCertSpec,
    'tls-key': tlsKeySpec,
    ca: caSpec,
  },
  args: {},
  strict: true,
} as const satisfies CommandSpec

export async function runKeeper(io: CommandIo, {flags}: Parsed<typeof keeperSpec>): Promise<void> {
  const {startKeeper} = await import('../roles/keeper/index.js')
  const {ClusterKey} = await import('../lib/cluster-key.js')
  const {loadCertificateAuthority, loadServerTls} = await import('../lib/tls.js')
  const {onShutdownSignal} = await import('../lib/http-server.js')
  const keeper = await startKeeper({
    master: resolveMasterUrl(flags.master),
    dataDir: flags.data,
    zone: flags.zone,
    host: flags.host,
    port: flags.port,
    advertise: flags.advertise === undefined ? undefined : parseHttpUrl(flags.advertise, '--advertise URL'),
    heartbeatIntervalMs: flags['heartbeat-interval'],
    stallTimeoutMs: flags['stall-timeout'],
    scrubIntervalMs: flags['scrub-interval'],
    scrubBytesPerSecond: flags['scrub-rate'],
    logLevel: flags['log-level'],
    clusterKey: flags['secret-file'] === undefined ? undefined : await ClusterKey.load(flags['secret-file']),
    insecure: flags.insecure,
    metricsPublic: flags['metrics-public'],
    tls: await loadServerTls(flags['tls-cert'], flags['tls-key']),
    ca: flags.ca === undefined ? undefined : await loadCertificateAuthority(flags.ca),
  })
  if (keeper.warning) io.logToStderr(keeper.warning)
  onShutdownSignal(() => keeper.stop())
  io.log(`dfs keeper ${keeper.id} listening on ${keeper.url}`)
}
