// --template=: populate a missing -D directory from a template tree once.
import { existsSync } from "node:fs";
import { copyTree } from "../util/copy.ts";
import { info } from "../util/log.ts";

export function populateFromTemplate(template: string, directory: string): void {
  if (existsSync(directory)) return;
  copyTree(template, directory);
  info(`Populated ${directory} from template ${template}.`);
}
