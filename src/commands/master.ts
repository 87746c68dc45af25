import {Flags} from '@oclif/core'

import {DfsCommand, caFlag, duration, durationFlag, insecureFlag, logLevelFlag, metricsPublicFlag, secretFileFlag, tlsCertFlag, tlsKeyFlag} from '../lib/base-command.js'
import {DEFAULTS} from '../lib/config.js'
import {onShutdownSignal} from '../lib/http-server.js'

export default class MasterCommand extends DfsCommand {
  static override summary = 'Run the master tracker: the file table, keeper liveness and replication.'
  static override description = `The master keeps its table (files, their replicas and the keepers) in SQLite under --data, so a restart with the same --data brings every record back; --backup-interval copies it online into --backup-dir, and --recover rebuilds a lost one from the keepers' inventories. Keepers send it a heartbeat every second; one silent for --heartbeat-timeout is dead and its files are copied elsewhere until each has --replicas alive copies. Stops gracefully on Ctrl-C or SIGTERM.`

  static override examples = [
    '<%= config.bin %> master --data ./master-data',
    '<%= config.bin %> master --host 0.0.0.0 --port 7700 --data /var/lib/dfs/master',
    '<%= config.bin %> master --data /var/lib/dfs/master --backup-interval 1h --backup-dir /var/backups/dfs',
    '<%= config.bin %> master --data /var/lib/dfs/master --recover --recover-keepers 6',
  ]

  static override flags = {
    host: Flags.string({description: 'address to listen on (0.0.0.0 for other machines)', default: DEFAULTS.host}),
    port: Flags.integer({description: 'port to listen on (0 = any free port)', default: DEFAULTS.masterPort, min: 0, max: 65_535}),
    data: Flags.string({description: 'directory for the master database', default: '.dfs/master'}),
    replicas: Flags.integer({description: 'alive replicas wanted per file', default: DEFAULTS.replicas, min: 1}),
    'heartbeat-timeout': duration('a keeper silent this long is dead', DEFAULTS.heartbeatTimeoutMs),
    'replication-interval': duration('how often the replication loop runs', DEFAULTS.replicationIntervalMs),
    // For tests: the cap itself, not its size, is what they check.
    'max-pending-uploads': Flags.integer({description: 'uploads begun and not committed, at most', default: DEFAULTS.maxPendingUploads, min: 1, hidden: true}),
    'log-level': logLevelFlag,
    'secret-file': secretFileFlag,
    insecure: insecureFlag,
    'metrics-public': metricsPublicFlag,
    'tls-cert': tlsCertFlag,
    'tls-key': tlsKeyFlag,
    ca: caFlag,
    recover: Flags.boolean({
      description: "rebuild a lost (empty) --data from the keepers' inventories; the newest generation of a name wins, the rest is set aside (dfs fsck lists it)",
      default: false,
    }),
    'recover-window': duration('with --recover: how long to listen to keepers registering before the table is built', DEFAULTS.recoverWindowMs),
    'recover-keepers': Flags.integer({description: 'with --recover: build the table as soon as this many keepers registered', min: 1}),
    'backup-interval': durationFlag({description: 'back up the table online this often into --backup-dir (default: no backups)'}),
    'backup-dir': Flags.string({description: 'directory for the backups of --backup-interval', helpValue: 'DIR'}),
    'backup-keep': Flags.integer({description: 'backups kept in --backup-dir (the oldest go)', default: DEFAULTS.backupKeep, min: 1}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(MasterCommand)
    if ((flags['backup-interval'] === undefined) !== (flags['backup-dir'] === undefined)) this.fail('--backup-interval and --backup-dir go together', 2)
    if (!flags.recover && flags['recover-keepers'] !== undefined) this.fail('--recover-keepers needs --recover', 2)
    const {startMaster} = await import('../roles/master/index.js')
    const {ClusterKey} = await import('../lib/cluster-key.js')
    const {loadCertificateAuthority, loadServerTls} = await import('../lib/tls.js')
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
      backups:
        flags['backup-interval'] === undefined ? undefined : {dir: flags['backup-dir']!, intervalMs: flags['backup-interval'], keep: flags['backup-keep']},
    })
    if (master.warning) this.logToStderr(master.warning)
    onShutdownSignal(() => master.stop())
    this.log(`dfs master listening on ${master.url}`)
  }
}
