// `node --import tsx --import ./test/support/importLog/register.mjs ...`: every module the process
// resolves is appended to the file in $IMPORT_LOG, one "URL<tab>importer" a line (serveGraph.test.ts).
import { register } from "node:module";
import process from "node:process";

register("./hooks.mjs", import.meta.url, { data: { log: process.env.IMPORT_LOG } });
