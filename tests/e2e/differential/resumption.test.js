// Differential: stream resumption with a new token (XEP-0198 over WebSocket, as Jitsi's client
// resumes after a network change: ?token=<new>&previd=<stream id>, then <resume/>). jitsi-meet's
// mod_auth_token copies the new session's fields onto the resumed one (c2s-session-updated).
// Prosody 0.12 and 13 ship mod_smacks; a Prosody without it skips these.
import { differentialSuite, freshRoom, prosodyHasSmacks, prosodyVersion } from '../lib/differential.js';
import { TOKEN_HOST, token } from './scenarios.js';

const skip = prosodyHasSmacks() ? false : 'this Prosody has no mod_smacks';
// Prosody 13 fires c2s-session-updated when a stream is resumed, and upstream's mod_auth_token
// then copies the new token's fields onto the resumed session; 0.12 fires nothing, so there the
// resumed session keeps its old fields on both sides.
// gatehouse applies the same copy on 0.12 when mod_smacks announces the resumption.
const fires = Number(prosodyVersion().split('.')[0]) >= 13;
const copied = fires ? {} : { differences: { resumed: 'resume-on-prosody-012' } };

/**
 * Logs in with `first`, then drops the connection and resumes the stream with `second`: the
 * session fields before, and those of the resumed session (what the room check and the other
 * modules read from then on).
 */
function resumeWith(first, second) {
  return async (side) => {
    const login = await side.login({ token: first });
    if (!login.ok) return { login: login.condition };
    // Stream management is enabled right after binding; wait for <enabled/>.
    for (let i = 0; i < 20 && !login.client.streamManagement.id; i++) await new Promise((r) => setTimeout(r, 50));
    const before = await side.fields(login.client);
    const resumed = await side.resume(login.client, second);
    return { before, resumed };
  };
}

const user = (name, extra = {}) => token({ room: '*', context: { user: { id: name, name } }, ...extra });

await differentialSuite('stream resumption with a new token', { host: TOKEN_HOST, mucModules: ['token_verification'], smacks: true }, [
  { name: 'resumed with the same token', run: ((t) => resumeWith(t, t))(user('ana')), skip },
  { name: 'resumed with a new token for the same user', run: resumeWith(user('ana'), user('ana', { room: freshRoom('res') })), skip, ...copied },
  { name: 'resumed with a token naming another user and room', run: resumeWith(user('ana'), user('eve', { room: 'elsewhere', context: { user: { id: 'eve', name: 'Eve' }, room: { lobby: true } } })), skip, ...copied },
  { name: 'resumed with an invalid token', run: resumeWith(user('ana'), token({ room: '*' }, { key: 'wrong' })), skip },
  { name: 'resumed without a token', run: resumeWith(user('ana'), undefined), skip },
]);
