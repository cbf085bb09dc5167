import { afterEach, beforeEach, expect, test } from "bun:test";
import { linkSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fsErrorText } from "../../../src/fs-error-text.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

let dir = "";
beforeEach(async () => {
  dir = await makeTempDir("dqp-fserr-");
  writeFileSync(`${dir}/file`, "x");
});
afterEach(async () => {
  await removeTempDir(dir);
});

function errorOf(step: () => unknown): unknown {
  try {
    step();
  } catch (error) {
    return error;
  }
  throw new Error("no error");
}

test("real fs errors read as '<path> <text>' with the fix; EEXIST means 'a file in the way' only for mkdir", () => {
  expect(fsErrorText(errorOf(() => mkdirSync(`${dir}/file/sub`, { recursive: true })))).toBe("has a file where its path needs a directory");
  expect(fsErrorText(errorOf(() => mkdirSync(`${dir}/file`, { recursive: true })))).toBe("is a file, not a directory");
  expect(fsErrorText(errorOf(() => linkSync(`${dir}/file`, `${dir}/file`)))).toBe("already exists");
  expect(fsErrorText(errorOf(() => readFileSync(dir)))).toBe("is a directory; name a file");
  expect(fsErrorText(errorOf(() => readFileSync(`${dir}/none`)))).toBe("does not exist");
  expect(fsErrorText(Object.assign(new Error("x"), { code: "EWEIRD" }))).toBe("cannot be used (EWEIRD)");
});
