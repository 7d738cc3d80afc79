// The Expo config plugin of react-native-chatsync (`"plugins": ["react-native-chatsync"]` in
// app.json): see plugin/withChatSync.js.
module.exports = require('./plugin/withChatSync');
