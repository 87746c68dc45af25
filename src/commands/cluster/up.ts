import {Flags} from '@oclif/core'

import {DfsCommand, durationFlag, formatDuration, logLevelFlag} from '../../lib/base-command.js'
import {DEFAULTS} from '../../lib/config.js'

export default class ClusterUpCommand extends DfsCommand {
  static override summary = 'Run a whole cluster on this machine: a master and N keepers as child processes.'
  static override description = `Everything lives under --dir: the master's table in DIR/master, each keeper's files in DIR/keeper-N, every process's log in DIR/logs/, the cluster key in DIR/secret (made on the first run and given to every process) and an admin token in DIR/token (made at every start); both are mode 0600. With --tls every process serves https, with a certificate signed by a private CA in DIR/tls (both made on the first run and kept). Running it again on the same --dir brings back the same files and keeper ids. Each process counts as up once it serves (a keeper once it has registered with the master). Ctrl-C or SIGTERM stops the keepers, then the master, gracefully; a second Ctrl-C kills them at once and exits with code 130 once they are gone.`

  static override examples = [
    '<%= config.bin %> cluster up',
    '<%= config.bin %> cluster up --keepers 6 --port 7800 --dir /tmp/dfs',
    '<%= config.bin %> cluster up --port 0 --heartbeat-interval 200ms --heartbeat-timeout 1s --replication-interval 1s',
  ]

  static override flags = {
    keepers: Flags.integer({description: 'number of keepers to run', default: DEFAULTS.keepers, min: 1, max: 256}),
    port: Flags.integer({description: 'port of the master (0 = any free port)', default: DEFAULTS.masterPort, min: 0, max: 65_535}),
    dir: Flags.string({description: 'directory for data and logs', default: DEFAULTS.clusterDir}),
    replicas: Flags.integer({description: `alive replicas wanted per file [default: ${DEFAULTS.replicas}, or --keepers if fewer]`, min: 1}),
    // No default of their own: given, they are passed to the children; else each child keeps the default shown.
    'replication-interval': durationFlag({description: `how often the master's replication loop runs [default: ${formatDuration(DEFAULTS.replicationIntervalMs)}]`}),
    'heartbeat-timeout': durationFlag({description: `a keeper silent this long is dead [default: ${formatDuration(DEFAULTS.heartbeatTimeoutMs)}]`}),
    'heartbeat-interval': durationFlag({description: `time between heartbeats of each keeper [default: ${formatDuration(DEFAULTS.heartbeatIntervalMs)}]`}),
    'log-level': logLevelFlag,
    tls: Flags.boolean({description: 'serve https: a private CA and a certificate for 127.0.0.1 and localhost are made in DIR/tls on the first run and kept (clients need --ca DIR/tls/ca.pem)', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(ClusterUpCommand)
    // More replicas than keepers could never be reached: every file would stay under-replicated.
    if (flags.replicas !== undefined && flags.replicas > flags.keepers) this.fail(`--replicas ${flags.replicas} is more than the ${flags.keepers} keepers can hold (one replica per keeper): give --keepers ${flags.replicas} or fewer replicas`, 2)
    const {runClusterUp} = await import('../../roles/cluster/cluster-up.js')

    // Only the flags given are passed on, so each child otherwise keeps its own default.
    const masterArgs = ['--replicas', String(flags.replicas ?? Math.min(DEFAULTS.replicas, flags.keepers)), '--log-level', flags['log-level']]
    if (flags['replication-interval'] !== undefined) masterArgs.push('--replication-interval', `${flags['replication-interval']}ms`)
    if (flags['heartbeat-timeout'] !== undefined) masterArgs.push('--heartbeat-timeout', `${flags['heartbeat-timeout']}ms`)
    const keeperArgs = ['--log-level', flags['log-level']]
    if (flags['heartbeat-interval'] !== undefined) keeperArgs.push('--heartbeat-interval', `${flags['heartbeat-interval']}ms`)

    const {killed} = await runClusterUp(
      {dir: flags.dir, keepers: flags.keepers, port: flags.port, masterArgs, keeperArgs, tls: flags.tls},
      {log: (line) => this.log(line), error: (line) => this.logToStderr(line), bin: this.config.bin},
    )
    if (killed) this.exit(130)
  }
}
