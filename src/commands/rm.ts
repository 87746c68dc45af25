import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {runRm, rmSpec} from '../cli/rm.js'

export default class RmCommand extends DfsCommand {
  static override summary = 'Delete files: each record goes at once, every keeper deletes its replica.'
  static override description = `With --recursive each NAME is a folder ("videos" means "videos/", never "videos.mp4") and every file under it is deleted. Each name succeeds or fails on its own; every one is reported, and if any of several failed the command exits 10.`

  static override examples = ['<%= config.bin %> rm video.mp4', '<%= config.bin %> rm a.mp4 b.mp4', '<%= config.bin %> rm --recursive videos/2024/']
  static override args = oclifArgs(rmSpec.args)
  static override flags = oclifFlags(rmSpec.flags)
  static override strict = rmSpec.strict

  async run(): Promise<void> {
    await runRm(this.io, await this.parseSpec(rmSpec))
  }
}
