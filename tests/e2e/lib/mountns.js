// Runs a command with another /etc/resolv.conf, in a private mount namespace (root only): the
// bind mount is seen by that process alone and vanishes with it. With lib/dns.js this points a
// process's own stub resolver at a test DNS server, whatever resolver library it uses.

/** argv prefix running the rest of the argv with `resolvConf` mounted over /etc/resolv.conf. */
export function withResolvConf(resolvConf) {
  return ['unshare', '--mount', '--propagation', 'private',
    'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf];
}

/** The same as one line of a shell script that then chroots into `root`. */
export function resolvConfMountLine(resolvConf, root = '') {
  return `mount --bind '${resolvConf}' '${root}/etc/resolv.conf'`;
}
