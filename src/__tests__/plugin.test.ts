/**
 * The Expo config plugin (app.plugin.js) run by @expo/config-plugins' own mod compiler, as
 * `npx expo prebuild` runs it, on a copy of Expo's bare template (the npm package
 * expo-template-bare-minimum, fetched by scripts/test-rn.sh into CHATSYNC_EXPO_TEMPLATE): the
 * written Info.plist, AppDelegate.swift and AndroidManifest.xml must have what the module needs,
 * and a second run must change nothing.
 */

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(__dirname, '..', '..', '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { compileModsAsync } = require(join(root, 'node_modules/@expo/config-plugins/build/plugins/mod-compiler'));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const withChatSync = require(join(root, 'app.plugin.js'));

async function prebuild(projectRoot: string): Promise<void> {
  let config = {
    name: 'HelloWorld',
    slug: 'expo-template-bare',
    ios: { bundleIdentifier: 'dev.example.hello' },
    android: { package: 'dev.example.hello' },
    _internal: { projectRoot },
  };
  config = withChatSync(config);
  await compileModsAsync(config, { projectRoot, platforms: ['ios', 'android'] });
}

const template = process.env.CHATSYNC_EXPO_TEMPLATE;

describe('the Expo config plugin on a sample app', { skip: template ? false : 'CHATSYNC_EXPO_TEMPLATE is not set (scripts/test-rn.sh sets it)' }, () => {
  it('writes the background modes, the task identifier, the registration, the service and the permissions, once', async () => {
    const project = mkdtempSync(join(tmpdir(), 'chatsync-expo-'));
    try {
      cpSync(template!, project, { recursive: true });
      await prebuild(project);
      const plist = readFileSync(join(project, 'ios/HelloWorld/Info.plist'), 'utf8');
      const modes = /<key>UIBackgroundModes<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(plist)?.[1] ?? '';
      assert.match(modes, /<string>fetch<\/string>/);
      assert.match(modes, /<string>processing<\/string>/);
      const ids = /<key>BGTaskSchedulerPermittedIdentifiers<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(plist)?.[1] ?? '';
      assert.match(ids, /<string>dev\.chatsync\.refresh<\/string>/);
      const swift = readFileSync(join(project, 'ios/HelloWorld/AppDelegate.swift'), 'utf8');
      assert.match(swift, /didFinishLaunchingWithOptions[^{]*\{\n {4}ChatSyncBackgroundTasks\.registerTasks\(\)/, 'first statement of launch');
      assert.match(swift, /^import react_native_chatsync$/m);
      const manifest = readFileSync(join(project, 'android/app/src/main/AndroidManifest.xml'), 'utf8');
      for (const p of ['INTERNET', 'ACCESS_NETWORK_STATE', 'RECEIVE_BOOT_COMPLETED', 'POST_NOTIFICATIONS']) {
        assert.equal(manifest.split(`android:name="android.permission.${p}"`).length - 1, 1, `${p} once`);
      }
      assert.match(manifest, /<service android:name="dev\.chatsync\.reactnative\.BackgroundSyncJobService" android:permission="android\.permission\.BIND_JOB_SERVICE" android:exported="true"\/>/);
      assert.match(manifest, /android:dataExtractionRules="@xml\/chatsync_data_extraction_rules"/);
      assert.match(manifest, /android:fullBackupContent="@xml\/chatsync_backup_rules"/);
      // The plugin's task identifier is the one the Swift registers.
      const tasks = readFileSync(join(root, 'ios/ChatSyncBackgroundTasks.swift'), 'utf8');
      assert.ok(tasks.includes(`static let identifier = "${withChatSync.TASK_IDENTIFIER}"`));

      await prebuild(project);
      assert.equal(readFileSync(join(project, 'ios/HelloWorld/Info.plist'), 'utf8'), plist, 'Info.plist unchanged by a second run');
      assert.equal(readFileSync(join(project, 'ios/HelloWorld/AppDelegate.swift'), 'utf8'), swift, 'AppDelegate unchanged');
      assert.equal(readFileSync(join(project, 'android/app/src/main/AndroidManifest.xml'), 'utf8'), manifest, 'manifest unchanged');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('registers the task in an Objective-C AppDelegate too', () => {
    const objc = '#import "AppDelegate.h"\n\n- (BOOL)application:(UIApplication *)application didFinishLaunchingWithOptions:(NSDictionary *)launchOptions\n{\n  return YES;\n}\n';
    const out = withChatSync.registerInAppDelegate(objc, 'objcpp');
    assert.match(out, /launchOptions\n\{\n {2}\[ChatSyncBackgroundTasks registerTasks\];/);
    assert.equal(withChatSync.registerInAppDelegate(out, 'objcpp'), out);
  });
});
