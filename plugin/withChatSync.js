/**
 * Expo config plugin: what `npx expo prebuild` must write into the native projects for
 * react-native-chatsync's background sync and notifications to work in a dev build.
 *
 * iOS (Info.plist, AppDelegate):
 *   - UIBackgroundModes gains `fetch` and `processing` (BGTaskScheduler's app refresh);
 *   - BGTaskSchedulerPermittedIdentifiers gains `dev.chatsync.refresh`;
 *   - the AppDelegate registers the task before launch ends (`ChatSyncBackgroundTasks.registerTasks()`).
 * Android (AndroidManifest.xml):
 *   - the permissions the module uses (network state, boot-persisted jobs, notifications);
 *   - the JobScheduler service, bound by BIND_JOB_SERVICE;
 *   - chatsync's backup rules on <application> when the app has none of its own (its data is
 *     under no_backup/ regardless).
 *
 * Plain CommonJS (app.plugin.js is loaded by the Expo CLI as it is); every change is idempotent,
 * so running prebuild twice changes nothing the second time.
 */

const { AndroidConfig, createRunOncePlugin, withAndroidManifest, withAppDelegate, withInfoPlist } = require('@expo/config-plugins');

const pkg = require('../package.json');

/** The BGTaskScheduler identifier ios/ChatSyncBackgroundTasks.swift registers. */
const TASK_IDENTIFIER = 'dev.chatsync.refresh';
const BACKGROUND_MODES = ['fetch', 'processing'];
const PERMISSIONS = [
  'android.permission.INTERNET',
  'android.permission.ACCESS_NETWORK_STATE',
  'android.permission.RECEIVE_BOOT_COMPLETED',
  'android.permission.POST_NOTIFICATIONS',
];
const JOB_SERVICE = 'dev.chatsync.reactnative.BackgroundSyncJobService';
const REGISTER_SWIFT = 'ChatSyncBackgroundTasks.registerTasks()';
const REGISTER_OBJC = '[ChatSyncBackgroundTasks registerTasks];';

function addAll(list, values) {
  const out = Array.isArray(list) ? [...list] : [];
  for (const v of values) if (!out.includes(v)) out.push(v);
  return out;
}

const withChatSyncInfoPlist = (config) =>
  withInfoPlist(config, (c) => {
    c.modResults.UIBackgroundModes = addAll(c.modResults.UIBackgroundModes, BACKGROUND_MODES);
    c.modResults.BGTaskSchedulerPermittedIdentifiers = addAll(c.modResults.BGTaskSchedulerPermittedIdentifiers, [TASK_IDENTIFIER]);
    return c;
  });

/** Inserts the registration as the first statement of didFinishLaunchingWithOptions. */
function registerInAppDelegate(contents, language) {
  if (contents.includes(REGISTER_SWIFT) || contents.includes(REGISTER_OBJC)) return contents;
  if (language === 'swift') {
    const launch = /func application\(\s*_ application: UIApplication,\s*didFinishLaunchingWithOptions[^{]*\{\n/;
    if (!launch.test(contents)) throw new Error('react-native-chatsync: no didFinishLaunchingWithOptions in AppDelegate.swift');
    let out = contents.replace(launch, (m) => `${m}    ${REGISTER_SWIFT} // react-native-chatsync: before launch ends\n`);
    if (!/^import react_native_chatsync$/m.test(out)) out = out.replace(/^(import React\n)/m, '$1import react_native_chatsync\n');
    if (!/^import react_native_chatsync$/m.test(out)) out = `import react_native_chatsync\n${out}`;
    return out;
  }
  const launch = /- \(BOOL\)application:\(UIApplication \*\)application didFinishLaunchingWithOptions:\(NSDictionary \*\)launchOptions\s*\{\n/;
  if (!launch.test(contents)) throw new Error('react-native-chatsync: no didFinishLaunchingWithOptions in AppDelegate');
  const out = contents.replace(launch, (m) => `${m}  ${REGISTER_OBJC} // react-native-chatsync: before launch ends\n`);
  return `#import "react_native_chatsync-Swift.h"\n${out}`;
}

const withChatSyncAppDelegate = (config) =>
  withAppDelegate(config, (c) => {
    c.modResults.contents = registerInAppDelegate(c.modResults.contents, c.modResults.language);
    return c;
  });

const withChatSyncAndroidManifest = (config) =>
  withAndroidManifest(config, (c) => {
    const manifest = c.modResults;
    AndroidConfig.Permissions.ensurePermissions(manifest, PERMISSIONS);
    const app = AndroidConfig.Manifest.getMainApplicationOrThrow(manifest);
    app.service = app.service ?? [];
    if (!app.service.some((s) => s.$['android:name'] === JOB_SERVICE)) {
      app.service.push({
        $: { 'android:name': JOB_SERVICE, 'android:permission': 'android.permission.BIND_JOB_SERVICE', 'android:exported': 'true' },
      });
    }
    if (!app.$['android:fullBackupContent']) app.$['android:fullBackupContent'] = '@xml/chatsync_backup_rules';
    if (!app.$['android:dataExtractionRules']) app.$['android:dataExtractionRules'] = '@xml/chatsync_data_extraction_rules';
    return c;
  });

const withChatSync = (config) => withChatSyncAndroidManifest(withChatSyncAppDelegate(withChatSyncInfoPlist(config)));

module.exports = createRunOncePlugin(withChatSync, pkg.name, pkg.version);
module.exports.TASK_IDENTIFIER = TASK_IDENTIFIER;
module.exports.registerInAppDelegate = registerInAppDelegate;
