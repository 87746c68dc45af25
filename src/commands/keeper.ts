import {DfsCommand, oclifFlags} from '../lib/base-command.js'
import {runKeeper, keeperSpec} from '../cli/keeper.js'

export default class KeeperCommand extends DfsCommand {
  static override summary = 'Run a data keeper: stores whole files on its disk and serves them over HTTP.'
  static override description = `A keeper registers with the master, keeps the id it is given in --data (so a restart keeps its identity and its files), and sends a heartbeat every --heartbeat-interval carrying its load and free space. Files are served at /files/NAME with Range support. --zone names its failure domain, given again at every start (the master records the latest). On another machine, listen on --host 0.0.0.0 and give the address others must use with --advertise. Ctrl-C or SIGTERM stops it gracefully: new requests are refused and the uploads and copies under way get up to 30 s to finish; a second signal stops it at once.`

  static override examples = [
    '<%= config.bin %> keeper --data ./keeper-1',
    '<%= config.bin %> keeper --master http://10.0.0.1:7700 --host 0.0.0.0 --port 7701 --advertise http://10.0.0.2:7701 --data /srv/dfs',
  ]

  static override flags = oclifFlags(keeperSpec.flags)

  async run(): Promise<void> {
    await runKeeper(this.io, await this.parseSpec(keeperSpec))
  }
}
