# Courier jail, off by default: a Debian host runs Postfix and Dovecot
# unless Courier was chosen. Courier's imapd, pop3d (also -ssl) and
# courieresmtpd log through syslog to /var/log/mail.log; the daemon opens
# this source only when an enabled jail reads it.
source "file" "courier" {
  path = "/var/log/mail.log"
}

# IMAP/POP3 login failures ("imapd: LOGIN FAILED, user=alice,
# ip=[::ffff:203.0.113.7]") and SMTP AUTH failures ("courieresmtpd:
# error,relay=::ffff:203.0.113.7,msg=\"535 Authentication failed.\"").
# Client text: the user name, logged as given: the address is the last
# ip=[...] on the line and only port= and protocol= may follow it, so a user
# name holding a fake "ip=[1.2.3.4]" cannot choose it. courieresmtpd's
# address comes right after "error,relay=", before any client text.
# 5 in 1h -> banned 1h, doubling to 1w, as for the other login jails.
jail "courier" {
  source   = "courier"
  programs = ["imapd", "imapd-ssl", "pop3d", "pop3d-ssl", "courierpop3login", "courierimaplogin", "courieresmtpd"]
  enabled  = false
  failregex = [
    "LOGIN FAILED, (?:user=(?P<user>.*), )?(?:method=[-\\w]+, )?ip=\\[<HOST>\\](?:, port=\\[\\d+\\])?\\s*$",
    # Courier 1.x writes the client's port too: "error,relay=::ffff:ADDR,
    # port=43632,msg=\"535 Authentication failed.\",cmd: AUTH LOGIN u".
    "error,relay=<HOST>,(?:port=\\d+,)?(?:ident=[^,]*,)?msg=\"535 Authentication failed\\.\"",
  ]
  # A successful login clears that address's failures for that user only.
  successregex = [
    "LOGIN, user=(?P<user>.*), ip=\\[<HOST>\\], port=\\[\\d+\\], protocol=\\w+\\s*$",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}
