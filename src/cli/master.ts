import {DEFAULTS} from '../lib/config.js'
import type {CommandIo} from './command-io.js'
import {
  type CommandSpec,
  type Parsed,
  caSpec,
  durationSpec,
  flag,
  insecureSpec,
  logLevelSpec,
  metricsPublicSpec,
  parseDuration,
  secretFileSpec,
  tlsCertSpec,
  tlsKeySpec,
} from './flag-spec.js'

export const masterSpec = {
  flags: {
    host: flag.string({description: 'address to listen on (0.0.0.0 for other machines)', default: DEFAULTS.host}),
    port: flag.integer({description: 'port to listen on (0 = any free port)', default: DEFAULTS.masterPort, min: 0, max: 65_535}),
    data: flag.string({description: 'directory for the master database', default: '.dfs/master'}),
    replicas: flag.integer({description: 'alive replicas wanted per file', default: DEFAULTS.replicas, min: 1}),
    'heartbeat-timeout': durationSpec('a keeper silent this long is dead', DEFAULTS.heartbeatTimeoutMs),
    'replication-interval': durationSpec('how often the replication loop runs', DEFAULTS.replicationIntervalMs),
    // For tests: the cap itself, not its size, is what they check.
    'max-pending-uploads': flag.integer({description: 'uploads begun and not committed, at most', default: DEFAULTS.maxPendingUploads, min: 1, hidden: true}),
    'log-level': logLevelSpec,
    'secret-file': secretFileSpec,
    insecure: insecureSpec,
    'metrics-public': metricsPublicSpec,
    'tls-cert': tlsCertSpec,
    'tls-key': tlsKeySpec,
    ca: caSpec,
    recover: flag.boolean({
      description: "rebuild a lost (empty) --data from the keepers' inventories; the newest generation of a name wins, the rest is set aside (dfs fsck lists it)",
      default: false,
    }),
    'recover-window': durationSpec('with --recover: how long to listen to keepers registering before the table is built', DEFAULTS.recoverWindowMs),
    'recover-keepers': flag.integer({description: 'with --recover: build the table as soon as this many keepers registered', min: 1}),
    'backup-interval': flag.custom({description: 'back up the table online this often into --backup-dir (default: no backups)', helpValue: 'DURATION', parse: parseDuration}),
    'backup-dir': flag.string({description: 'directory for the backups of --backup-interval', helpValue: 'DIR'}),
    'backup-keep': flag.integer({description: 'backups kept in --backup-dir (the oldest go)', default: DEFAULTS.backupKeep, min: 1}),
  },
  args: {},
  strict: true,
} as const satisfies CommandSpec

export async function runMaster(io: CommandIo, {flags}: Parsed<typeof masterSpec>): Promise<void> {
  if ((flags['backup-interval'] === undefined) !== (flags['backup-dir'] === undefined)) io.fail('--backup-interval and --backup-dir go together', 2)
  if (!flags.recover && flags['recover-keepers'] !== undefined) io.fail('--recover-keepers needs --recover', 2)
  const {startMaster} = await import('../roles/master/index.js')
  const {ClusterKey} = await import('../lib/cluster-key.js')
  const {loadCertificateAuthority, loadServerTls} = await import('../lib/tls.js')
  const {onShutdownSignal} = await import('../lib/http-server.js')
  const master = await startMaster({
    host: flags.host,
    port: flags.port,
    dataDir: flags.data,
    replicas: flags.replicas,
    heartbeatTimeoutMs: flags['heartbeat-timeout'],
    replicationIntervalMs: flags['replication-interval'],
    maxPendingUploads: flags['max-pending-uploads'],
    logLevel: flags['log-level'],
    clusterKey: flags['secret-file'] === undefined ? undefined : await ClusterKey.load(flags['secret-file']),
    insecure: flags.insecure,
    metricsPublic: flags['metrics-public'],
    tls: await loadServerTls(flags['tls-cert'], flags['tls-key']),
    ca: flags.ca === undefined ? undefined : await loadCertificateAuthority(flags.ca),
    recover: flags.recover ? {windowMs: flags['recover-window'], keepers: flags['recover-keepers']} : undefined,
    backups: flags['backup-interval'] === undefined ? undefined : {dir: flags['backup-dir']!, intervalMs: flags['backup-interval'], keep: flags['backup-keep']},
  })
  if (master.warning) io.logToStderr(master.warning)
  onShutdownSignal(() => master.stop())
  io.log(`dfs master listening on ${master.url}`)
}
