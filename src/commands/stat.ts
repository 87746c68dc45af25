import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {runStat, statSpec} from '../cli/stat.js'

export default class StatCommand extends DfsCommand {
  static override summary = "Show one file's size, sha256, health, where its replicas are (keeper and zone), and for an mp4 its duration, resolution, codecs and bitrate."
  static override examples = ['<%= config.bin %> stat video.mp4', '<%= config.bin %> stat video.mp4 --json']
  static override args = oclifArgs(statSpec.args)
  static override flags = oclifFlags(statSpec.flags)
  static override strict = statSpec.strict

  async run(): Promise<void> {
    await runStat(this.io, await this.parseSpec(statSpec))
  }
}
