#!/usr/bin/perl
# Test helper: run under systemd-socket-activate, which passes the listening socket as
# fd 3 and execs this once. It keeps fd 3 open, as systemd does for a socket unit, and
# starts `@ARGV` again each time it exits, handing the socket over with LISTEN_FDS and
# LISTEN_PID set to the new process, as systemd does. Connections that arrive while no
# plugin runs wait in the socket's backlog. Prints "spawned PID" and "exited PID STATUS"
# lines; SIGTERM stops the current child and then this.
use strict;
use warnings;
use POSIX ();

$| = 1;
die "respawn-activated: no socket passed (LISTEN_FDS=1, LISTEN_PID=$$ expected)\n"
  unless ($ENV{LISTEN_FDS} // '') eq '1' && ($ENV{LISTEN_PID} // '') eq "$$";
die "usage: respawn-activated.pl PROGRAM ARGS...\n" unless @ARGV;

my $stopping = 0;
my $child = 0;
$SIG{TERM} = sub {
  $stopping = 1;
  kill 'TERM', $child if $child;
};

until ($stopping) {
  $child = fork() // die "respawn-activated: fork: $!\n";
  if ($child == 0) {
    $ENV{LISTEN_PID} = $$;
    exec { $ARGV[0] } @ARGV or POSIX::_exit(127);
  }
  print "spawned $child\n";
  my $status;
  do { $status = waitpid($child, 0) } until $status == $child || $status == -1;
  print "exited $child $?\n";
  $child = 0;
}
