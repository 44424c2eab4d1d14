#!/usr/bin/env bash
# bench/meta3k.sh CMKFS — 3,000 small files through one cmkfs binary: create, cold read
# (remount, drop caches), rename, unlink; prints seconds for each. Needs root.
# Run it for two builds, interleaved, to compare formats (doc/PERFORMANCE.md,
# "Format 3: binding the tree").
C=$1; D=$(mktemp -d /tmp/mb.XXXX); mkdir $D/c $D/m
$C init --service-key $D/k $D/c >/dev/null 2>&1
$C mount --service-key $D/k $D/c $D/m
t0=$(date +%s.%N); python3 -c "
import os,sys
d=sys.argv[1]
for i in range(3000):
    with open(os.path.join(d,'f%05d'%i),'wb') as f: f.write(b'x'*100)
" $D/m; t1=$(date +%s.%N)
$C umount $D/m; sync; echo 3 > /proc/sys/vm/drop_caches; $C mount --service-key $D/k $D/c $D/m
t2=$(date +%s.%N); cat $D/m/f* > /dev/null; t3=$(date +%s.%N)
python3 -c "
import os,sys
d=sys.argv[1]
for i in range(3000): os.rename(os.path.join(d,'f%05d'%i), os.path.join(d,'g%05d'%i))
" $D/m; t4=$(date +%s.%N)
rm -f $D/m/g*; t5=$(date +%s.%N)
$C umount $D/m; rm -rf $D
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" 'BEGIN { printf "create %.2f read %.2f rename %.2f unlink %.2f\n", b - a, d - c, e - d, f - e }'
