# smtpban main configuration (installed as /etc/smtpban/smtpban.hcl).
# `smtpban check` validates it and every file it includes.
#
# Durations are strings: "90s", "10m", "1h", "1d", "1w", "1d12h".
# Regexes are HCL strings: write each regex backslash twice ("\\[", "\\d").

# Bans, failure windows and read positions (bbolt).
state_dir = "/var/lib/smtpban"

# Control socket for the smtpban client (root, and smtpband's own user).
socket = "/run/smtpban/smtpband.sock"
# Let a group use `smtpban ban/unban/allow/reload` too (socket mode 0660).
# Under the systemd unit the daemon, not root, gives the socket to the
# group: it must be in it (Group= or SupplementaryGroups=), and the unit
# needs SystemCallFilter=@chown.
# socket_group = "smtpban"

# Prometheus metrics (smtpban_*) on this address; off when unset. The
# systemd unit then needs AF_INET in RestrictAddressFamilies (see its comments).
# metrics = "127.0.0.1:9377"

# Jail files, relative to this file's directory. Left out, this defaults to
# ["jails.d/*.hcl"]; `include = []` reads none.
include = ["jails.d/*.hcl"]

# Addresses and networks never banned, in addition to loopback and the
# host's own addresses. Put your office, monitoring and backup MX here,
# e.g. ["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7"].
ignore = []

# Failure windows (one per counted address or prefix and jail) held at
# most; the default is 2097152. Each costs about 60 bytes of heap, some
# 150 of resident memory with the garbage collector's headroom. Past the
# bound the window closest to expiry is dropped: a flood from more
# addresses than this is counted in part. A reload applies a new bound.
# max_windows = 2097152

# Debian 12 has no rsyslog by default: Postfix and Dovecot log to the
# journal only. One source for both, so each line is read once; the jails
# in jails.d read "mail", each only the lines of its own programs.
# match picks the entries journalctl passes on; trust is who may have
# written them. Any local user can log with SYSLOG_IDENTIFIER=postfix/smtpd
# (`logger -t postfix/smtpd ...`), so an entry is read only when journald's
# own fields, which the sender cannot set, name the mail services' units.
# A multi-instance Postfix (postfix@postfix-out.service) needs its unit
# added to both lists.
source "journal" "mail" {
  match = [
    "_SYSTEMD_UNIT=postfix@-.service",
    "_SYSTEMD_UNIT=dovecot.service",
  ]
  trust = [
    "_SYSTEMD_UNIT=postfix@-.service",
    "_SYSTEMD_UNIT=dovecot.service",
  ]
}

# With rsyslog writing /var/log/mail.log, read the file instead: delete the
# journal source above and uncomment this line. The jails are the same. A
# log file cannot say who wrote a line: any local user can reach syslog, so
# prefer the journal on hosts with untrusted local users.
# source "file" "mail" { path = "/var/log/mail.log" }
#
# Dovecot's own log file (log_path in dovecot.conf) has its own layout:
# source "file" "dovecot-log" {
#   path   = "/var/log/dovecot.log"
#   format = "dovecot"
# }
# and the dovecot jails then read sources = ["mail", "dovecot-log"].

# Bans go into smtpban's own nftables table (family inet), on the mail
# ports only. IMAP, POP3 and ManageSieve are listed because the dovecot jail
# bans guessers on those. `firewall "dryrun" {}` only logs what it would do.
firewall "nftables" {
  table = "smtpban"
  ports = [25, 465, 587, 110, 143, 993, 995, 4190]
  # true: drop banned addresses on every port.
  all_ports = false
  # true: answer with a TCP reset instead of dropping silently.
  reject = false
  # No ban ever covers more than a /16 (IPv4) or a /32 (IPv6).
  min_prefix_v4 = 16
  min_prefix_v6 = 32
  # How often the kernel's table is checked against the stored bans.
  resync = "10s"
}

# Compromised accounts. The account watch follows what each authenticated
# account sends (Postfix's "client=..., sasl_username=" lines joined with
# qmgr's by queue ID, Exim's "<= ... A=...:user") and who fails to log in
# as it (Postfix, Dovecot, Exim). An account over a limit is held: the
# addresses that used it in the last hour are banned (not those in a
# network it has used for more than a day, nor ignore-list networks), an
# alert is kept, the hook runs, and the
# policy service below answers HOLD for its mail until
# `smtpban account release USER`. The most specific pattern wins: a name
# beats a glob, a longer glob a shorter one. 0 turns a limit off.
account "*" {
  messages_per_hour   = 100
  messages_per_day    = 500
  recipients_per_hour = 300
  addresses_per_hour  = 5 # distinct client addresses sending as the account
  networks_per_hour   = 3 # distinct /24 (IPv4) or /48 (IPv6)
  # Messages in one hour from networks the account had not used in
  # new_network_age (once the account has been followed for a day).
  new_network_messages = 20
  new_network_age      = "30d"
  action               = "hold" # or "defer", "reject" (with text)
}
# account "newsletter@example.org" {
#   messages_per_hour   = 5000
#   recipients_per_hour = 50000
# }

# accounts {
#   sources         = ["mail"]  # default: the sources the jails read
#   ban_time        = "1d"      # how long a held account's addresses are banned
#   guess_addresses = 30        # distinct addresses failing as one account...
#   guess_window    = "1d"      # ...within this: all banned; a later login from their networks holds it
#   hook            = ["/usr/local/sbin/account-alert"] # gets the alert as JSON on stdin
#   hook_timeout    = "10s"
#   max_accounts    = 100000
# }

# The Postfix policy service that holds a held account's mail at once, and
# counts in real time. See README "Compromised accounts" for main.cf.
# policy {
#   listen = "127.0.0.1:10040" # or "unix:/run/smtpban/policy.sock"
# }
