import {DfsCommand, oclifFlags} from '../lib/base-command.js'
import {runMaster, masterSpec} from '../cli/master.js'

export default class MasterCommand extends DfsCommand {
  static override summary = 'Run the master tracker: the file table, keeper liveness and replication.'
  static override description = `The master keeps its table (files, their replicas and the keepers) in SQLite under --data, so a restart with the same --data brings every record back; --backup-interval copies it online into --backup-dir, and --recover rebuilds a lost one from the keepers' inventories. Keepers send it a heartbeat every second; one silent for --heartbeat-timeout is dead and its files are copied elsewhere until each has --replicas alive copies. Stops gracefully on Ctrl-C or SIGTERM.`

  static override examples = [
    '<%= config.bin %> master --data ./master-data',
    '<%= config.bin %> master --host 0.0.0.0 --port 7700 --data /var/lib/dfs/master',
    '<%= config.bin %> master --data /var/lib/dfs/master --backup-interval 1h --backup-dir /var/backups/dfs',
    '<%= config.bin %> master --data /var/lib/dfs/master --recover --recover-keepers 6',
  ]

  static override flags = oclifFlags(masterSpec.flags)

  async run(): Promise<void> {
    await runMaster(this.io, await this.parseSpec(masterSpec))
  }
}
