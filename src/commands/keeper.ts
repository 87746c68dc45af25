import {Flags} from '@oclif/core'

import {DfsCommand, caFlag, duration, insecureFlag, logLevelFlag, masterFlag, metricsPublicFlag, secretFileFlag, sizeFlag, tlsCertFlag, tlsKeyFlag} from '../lib/base-command.js'
import {DEFAULTS, parseHttpUrl, resolveMasterUrl} from '../lib/config.js'
import {DEFAULT_ZONE, ZONE_PATTERN} from '../lib/protocol.js'
import {onShutdownSignal} from '../lib/http-server.js'

export default class KeeperCommand extends DfsCommand {
  static override summary = 'Run a data keeper: stores whole files on its disk and serves them over HTTP.'
  static override description = `A keeper registers with the master, keeps the id it is given in --data (so a restart keeps its identity and its files), and sends a heartbeat every --heartbeat-interval carrying its load and free space. Files are served at /files/NAME with Range support. --zone names its failure domain, given again at every start (the master records the latest). On another machine, listen on --host 0.0.0.0 and give the address others must use with --advertise.`

  static override examples = [
    '<%= config.bin %> keeper --data ./keeper-1',
    '<%= config.bin %> keeper --master http://10.0.0.1:7700 --host 0.0.0.0 --port 7701 --advertise http://10.0.0.2:7701 --data /srv/dfs',
  ]

  static override flags = {
    master: masterFlag,
    host: Flags.string({description: 'address to listen on (0.0.0.0 for other machines)', default: DEFAULTS.host}),
    port: Flags.integer({description: 'port to listen on (0 = any free port)', default: 0, min: 0, max: 65_535}),
    advertise: Flags.string({description: 'URL other machines reach this keeper at', helpValue: 'URL'}),
    data: Flags.string({description: 'directory for stored files and the keeper id', default: '.dfs/keeper'}),
    zone: Flags.custom<string>({
      description: "the failure domain it sits in (a rack, a room, a site): a file's replicas go into as many zones as there are",
      helpValue: 'NAME',
      default: DEFAULT_ZONE,
      async parse(input) {
        if (!ZONE_PATTERN.test(input)) throw new Error(`"${input}" is not a zone name: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`)
        return input
      },
    })(),
    'heartbeat-interval': duration('time between heartbeats', DEFAULTS.heartbeatIntervalMs),
    'scrub-interval': duration('pause between background re-hashes of every stored file', DEFAULTS.scrubIntervalMs),
    'scrub-rate': sizeFlag({description: 'bytes per second the scrubber may read', default: DEFAULTS.scrubBytesPerSecond, defaultHelp: async () => '32MiB'}),
    'log-level': logLevelFlag,
    'secret-file': secretFileFlag,
    insecure: insecureFlag,
    'metrics-public': metricsPublicFlag,
    'tls-cert': tlsCertFlag,
    'tls-key': tlsKeyFlag,
    ca: caFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(KeeperCommand)
    const {startKeeper} = await import('../roles/keeper/index.js')
    const {ClusterKey} = await import('../lib/cluster-key.js')
    const {loadCertificateAuthority, loadServerTls} = await import('../lib/tls.js')
    const keeper = await startKeeper({
      master: resolveMasterUrl(flags.master),
      dataDir: flags.data,
      zone: flags.zone,
      host: flags.host,
      port: flags.port,
      advertise: flags.advertise === undefined ? undefined : parseHttpUrl(flags.advertise, '--advertise URL'),
      heartbeatIntervalMs: flags['heartbeat-interval'],
      scrubIntervalMs: flags['scrub-interval'],
      scrubBytesPerSecond: flags['scrub-rate'],
      logLevel: flags['log-level'],
      clusterKey: flags['secret-file'] === undefined ? undefined : await ClusterKey.load(flags['secret-file']),
      insecure: flags.insecure,
      metricsPublic: flags['metrics-public'],
      tls: await loadServerTls(flags['tls-cert'], flags['tls-key']),
      ca: flags.ca === undefined ? undefined : await loadCertificateAuthority(flags.ca),
    })
    if (keeper.warning) this.logToStderr(keeper.warning)
    onShutdownSignal(() => keeper.stop())
    this.log(`dfs keeper ${keeper.id} listening on ${keeper.url}`)
  }
}
