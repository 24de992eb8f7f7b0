// SPDX-License-Identifier: GPL-2.0
/*
 * pgrx: count (and optionally drop) pktgen packets at ingress, per network namespace.
 *
 * A netfilter PRE_ROUTING hook at the first priority, IPv4 and IPv6, takes UDP packets to the
 * configured port (9, pktgen's default); or, once devices are named ("ingress add IFNAME"), a
 * netdev-ingress hook on each of them instead, before the IP layer (ip_rcv's checks and its
 * netfilter hook are then never paid for a frame pgrx drops). Those carrying pktgen's header
 * (magic 0xbe9be955) are tracked per stream (ingress device + source MAC + UDP source port): a
 * window of sequence numbers gives unique, duplicate, late (reordered) and missing packets; the
 * header's timestamp gives one-way latency on one host, one sample per new sequence number (a
 * clone or burst copy of a header is not another sample): min/avg/max and a log-linear
 * histogram, exact below 256 us and within 1/128 above (HdrHistogram's layout at 2 significant
 * figures). "latency N" samples one sequence number in N (a clock read per packet costs pps at
 * high rates), chosen by a hash of the number alone: the same packets on every path, whatever
 * their arrival time or latency; 1 (the default) samples every one, 0 none.
 *
 * Every packet updates only its CPU's counters (no lock shared by all packets); a stream has
 * a lock of its own. IPv4 fragments are not pktgen's (only a first fragment has the port);
 * a GRO-merged skb counts as the segments it carries (with UDP GRO each segment's header is
 * tracked). "drop 1" drops pktgen's packets only.
 *
 * /proc/net/pgrx (per namespace) shows the counters; writing "reset", "drop 0|1", "port N",
 * "latency N", "ingress add IFNAME" or "ingress del IFNAME" changes them ("reset" between
 * runs, not while packets arrive; a device leaving the namespace leaves pgrx's list, and with
 * none left PRE_ROUTING counts again). This is the paper's ip_input.c count-and-drop patchlet
 * (Section 9.3, Appendix D) as a module, with the receive-side analysis pktgen itself never had.
 */

#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/netfilter_netdev.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/if_ether.h>
#include <linux/etherdevice.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/bitmap.h>
#include <linux/percpu.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#define PGRX_MAGIC 0xbe9be955
#define PGRX_STREAMS 16
#define PGRX_INGRESS 8			/* devices counted at their netdev ingress */
/* after every other netdev-ingress hook (nftables' chains too), as PRE_ROUTING's place was */
#define PGRX_INGRESS_PRIORITY (1 << 30)
#define PGRX_WINDOW 16384		/* sequence numbers remembered per stream */
#define PGRX_EVERY_MAX (1 << 20)	/* the sparsest latency sample: 1 in 2^20 */
/* sequence numbers sampled for latency: those whose Fibonacci hash is below a cut of 2^32/N
 * (one in N; pktgen numbers 1, 2, 3...: the hash spreads them, no period lines up with N) */
#define PGRX_HASH 0x9e3779b1u
/* latency buckets, HdrHistogram's layout: exact below 2^SUB_BITS us, then HALF buckets per
 * power of two up to 2^TOP_BIT us (18 minutes; beyond counts in the last bucket) */
#define PGRX_SUB_BITS 8
#define PGRX_SUB (1 << PGRX_SUB_BITS)
#define PGRX_HALF (PGRX_SUB / 2)
#define PGRX_TOP_BIT 30
#define PGRX_BUCKETS (PGRX_SUB + (PGRX_TOP_BIT - PGRX_SUB_BITS) * PGRX_HALF)

static unsigned int port = 9;
module_param(port, uint, 0444);
MODULE_PARM_DESC(port, "UDP destination port counted in new namespaces (default 9)");

static bool drop;
module_param(drop, bool, 0444);
MODULE_PARM_DESC(drop, "drop counted pktgen packets in new namespaces (default 0)");

struct pgrx_hdr {			/* pktgen's header, big-endian */
	__be32 magic;
	__be32 seq;
	__be32 tv_sec;
	__be32 tv_usec;
};

struct pgrx_stream {
	int used;			/* published with release once the key is set */
	int ifindex;
	u8 mac[ETH_ALEN];
	u16 sport;
	spinlock_t lock;		/* the counters below */
	u32 first, highest;		/* sequence numbers */
	u64 received, unique, duplicates, late, beyond_window;
	unsigned long seen[BITS_TO_LONGS(PGRX_WINDOW)];	/* bit (seq % WINDOW) */
};

struct pgrx_cpu {			/* one CPU's share of the counters */
	u64 packets, bytes, dropped, pktgen, other;	/* port matches; with magic; without */
	u64 fragments, gro;		/* IPv4 first fragments to the port; GRO-merged skbs */
	u64 lat_samples, lat_sum_us, lat_min_us, lat_max_us, lat_future;
	u64 buckets[PGRX_BUCKETS];
};

struct pgrx_net {
	spinlock_t lock;		/* adding streams, reset */
	unsigned int port;
	bool drop;
	unsigned int lat_every;		/* latency: 1 sequence number in lat_every (0: none) */
	u64 lat_cut;			/* 2^32 / lat_every: hashes below it are sampled */
	struct pgrx_cpu __percpu *cpu;
	struct pgrx_stream streams[PGRX_STREAMS];
	atomic64_t streams_overflow;
	struct nf_hook_ops ops[2];
	/* the devices counted at their netdev ingress, changed under RTNL: a slot is free while
	 * its dev is NULL, and a used one never moves (the kernel keeps a registered hook's
	 * address). While there is one, the PRE_ROUTING hooks let every packet pass uncounted. */
	struct nf_hook_ops ingress[PGRX_INGRESS];
	int ingress_count;		/* slots in use */
	char ingress_names[PGRX_INGRESS][IFNAMSIZ];	/* under lock, for reading without RTNL */
};

static bool pgrx_exiting;		/* set under RTNL when the module goes: no new hooks */

static unsigned int pgrx_net_id __read_mostly;
static const u8 no_mac[ETH_ALEN];

static void pgrx_reset(struct pgrx_net *pn)
{
	int cpu, i;

	for_each_possible_cpu(cpu) {
		struct pgrx_cpu *pc = per_cpu_ptr(pn->cpu, cpu);

		memset(pc, 0, sizeof(*pc));
		pc->lat_min_us = U64_MAX;
	}
	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		spin_lock(&s->lock);
		s->used = 0;
		s->first = s->highest = 0;
		s->received = s->unique = s->duplicates = s->late = s->beyond_window = 0;
		bitmap_zero(s->seen, PGRX_WINDOW);
		spin_unlock(&s->lock);
	}
	atomic64_set(&pn->streams_overflow, 0);
}

static bool pgrx_same(const struct pgrx_stream *s, int ifindex, const u8 *mac, u16 sport)
{
	return s->ifindex == ifindex && s->sport == sport && ether_addr_equal(s->mac, mac);
}

/* The stream of (ifindex, mac, sport): looked up without a lock (streams are only added, and
 * published with release), added under the namespace's lock; NULL when the table is full. */
static struct pgrx_stream *pgrx_stream(struct pgrx_net *pn, int ifindex, const u8 *mac,
				       u16 sport)
{
	struct pgrx_stream *found = NULL;
	int i;

	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		if (!smp_load_acquire(&s->used))
			break;
		if (pgrx_same(s, ifindex, mac, sport))
			return s;
	}
	spin_lock(&pn->lock);
	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		if (!s->used) {
			s->ifindex = ifindex;
			s->sport = sport;
			ether_addr_copy(s->mac, mac);
			smp_store_release(&s->used, 1);
			found = s;
			break;
		}
		if (pgrx_same(s, ifindex, mac, sport)) {
			found = s;
			break;
		}
	}
	spin_unlock(&pn->lock);
	if (!found)
		atomic64_inc(&pn->streams_overflow);
	return found;
}

/* Track ``seq`` in its stream; true if it is a sequence number not seen before. Under the
 * stream's lock: the bitmap's non-atomic operations are enough. */
static bool pgrx_track(struct pgrx_stream *s, u32 seq)
{
	u32 bit = seq % PGRX_WINDOW;

	s->received++;
	if (s->unique == 0) {
		s->first = s->highest = seq;
		s->unique = 1;
		__set_bit(bit, s->seen);
		return true;
	}
	if ((s32)(seq - s->highest) > 0) {
		u32 ahead = seq - s->highest;

		/* forget the numbers that slide out of the window */
		if (ahead >= PGRX_WINDOW) {
			bitmap_zero(s->seen, PGRX_WINDOW);
		} else {
			u32 n;

			for (n = 1; n <= ahead; n++)
				__clear_bit((s->highest + n) % PGRX_WINDOW, s->seen);
		}
		s->highest = seq;
		__set_bit(bit, s->seen);
		s->unique++;
		return true;
	}
	if (s->highest - seq >= PGRX_WINDOW) {
		s->beyond_window++;	/* too old to tell late from duplicate */
		return false;
	}
	if (__test_and_set_bit(bit, s->seen)) {
		s->duplicates++;
		return false;
	}
	s->unique++;
	s->late++;
	return true;
}

static unsigned int pgrx_bucket(u64 us)
{
	unsigned int top;

	if (us < PGRX_SUB)
		return us;
	if (us >= 1ULL << PGRX_TOP_BIT)
		return PGRX_BUCKETS - 1;
	top = fls64(us) - 1;		/* PGRX_SUB_BITS .. PGRX_TOP_BIT - 1 */
	return PGRX_SUB + (top - PGRX_SUB_BITS) * PGRX_HALF +
	       (us >> (top - PGRX_SUB_BITS + 1)) - PGRX_HALF;
}

/* The lowest latency (us) that falls into bucket ``b``. */
static u64 pgrx_bucket_low(unsigned int b)
{
	unsigned int k;

	if (b < PGRX_SUB)
		return b;
	k = b - PGRX_SUB;
	return (u64)(k % PGRX_HALF + PGRX_HALF) << (k / PGRX_HALF + 1);
}

static void pgrx_latency(struct pgrx_cpu *pc, const struct pgrx_hdr *h)
{
	struct timespec64 now;
	s64 sent_us, now_us, lat;

	if (!h->tv_sec && !h->tv_usec)
		return;			/* NO_TIMESTAMP */
	ktime_get_real_ts64(&now);
	now_us = now.tv_sec * USEC_PER_SEC + now.tv_nsec / NSEC_PER_USEC;
	/* tv_sec is the low 32 bits of the sender's seconds */
	sent_us = (s64)((now.tv_sec & ~0xffffffffLL) | ntohl(h->tv_sec)) * USEC_PER_SEC +
		  ntohl(h->tv_usec);
	lat = now_us - sent_us;
	if (lat < 0) {
		pc->lat_future++;
		return;
	}
	pc->lat_samples++;
	pc->lat_sum_us += lat;
	if (lat < pc->lat_min_us)
		pc->lat_min_us = lat;
	if (lat > pc->lat_max_us)
		pc->lat_max_us = lat;
	pc->buckets[pgrx_bucket(lat)]++;
}

/* Count (and drop) ``skb`` if it is a packet to the port; its network header at offset 0. */
static unsigned int pgrx_count(struct pgrx_net *pn, struct sk_buff *skb,
			       const struct nf_hook_state *state, bool ipv4)
{
	struct pgrx_cpu *pc;
	struct udphdr _uh, *uh;
	struct pgrx_hdr _ph, *ph;
	unsigned int l4off, segs;
	bool fragment = false, dropping = false;

	if (ipv4) {
		struct iphdr _iph, *iph = skb_header_pointer(skb, 0, sizeof(_iph), &_iph);

		if (!iph || iph->version != 4 || iph->protocol != IPPROTO_UDP || iph->ihl < 5)
			return NF_ACCEPT;
		if (iph->frag_off & htons(IP_OFFSET))
			return NF_ACCEPT;	/* a later fragment: no UDP header */
		fragment = iph->frag_off & htons(IP_MF);
		l4off = iph->ihl * 4;
	} else {
		struct ipv6hdr _ip6h, *ip6h = skb_header_pointer(skb, 0, sizeof(_ip6h), &_ip6h);

		if (!ip6h || ip6h->version != 6 || ip6h->nexthdr != IPPROTO_UDP)
			return NF_ACCEPT;	/* a fragment has its own next header */
		l4off = sizeof(struct ipv6hdr);
	}
	uh = skb_header_pointer(skb, l4off, sizeof(_uh), &_uh);
	if (!uh || ntohs(uh->dest) != READ_ONCE(pn->port))
		return NF_ACCEPT;
	ph = fragment ? NULL : skb_header_pointer(skb, l4off + sizeof(_uh), sizeof(_ph), &_ph);
	segs = skb_is_gso(skb) ? max_t(unsigned int, skb_shinfo(skb)->gso_segs, 1) : 1;

	/* both hooks run with bottom halves off: this CPU's counters are ours alone */
	pc = this_cpu_ptr(pn->cpu);
	pc->packets += segs;
	/* bytes as interface counters count them: from the Ethernet header, without the FCS */
	pc->bytes += skb->len + (skb_mac_header_was_set(skb) ? skb->mac_len : 0);
	if (segs > 1)
		pc->gro++;
	if (ph && ntohl(ph->magic) == PGRX_MAGIC) {
		struct pgrx_stream *s;
		bool new = true;

		/* UDP GRO (rx-udp-gro-forwarding) keeps one UDP header and each segment's payload
		 * after it, gso_size bytes apiece: each starts with its own pktgen header */
		bool udp_l4 = segs > 1 && (skb_shinfo(skb)->gso_type & SKB_GSO_UDP_L4);
		unsigned int seg_size = skb_shinfo(skb)->gso_size, i;

		pc->pktgen += segs;
		s = pgrx_stream(pn, state->in ? state->in->ifindex : 0,
				skb_mac_header_was_set(skb) ? eth_hdr(skb)->h_source : no_mac,
				ntohs(uh->source));
		for (i = 0; i < (udp_l4 ? segs : 1); i++) {
			struct pgrx_hdr _sh, *sh = i == 0 ? ph :
				skb_header_pointer(skb, l4off + sizeof(_uh) + i * seg_size,
						   sizeof(_sh), &_sh);

			if (!sh || ntohl(sh->magic) != PGRX_MAGIC)
				continue;
			new = true;
			if (s) {
				spin_lock(&s->lock);
				new = pgrx_track(s, ntohl(sh->seq));
				spin_unlock(&s->lock);
			}
			if (new && (u64)(u32)(ntohl(sh->seq) * PGRX_HASH) < READ_ONCE(pn->lat_cut))
				pgrx_latency(pc, sh);
		}
		dropping = READ_ONCE(pn->drop);
	} else {
		pc->other += segs;
		if (fragment)
			pc->fragments++;
	}
	if (dropping)
		pc->dropped += segs;
	return dropping ? NF_DROP : NF_ACCEPT;
}

static unsigned int pgrx_hook(void *priv, struct sk_buff *skb,
			      const struct nf_hook_state *state)
{
	struct pgrx_net *pn = priv;

	if (READ_ONCE(pn->ingress_count))
		return NF_ACCEPT;	/* counted at the devices' ingress, or not to be */
	return pgrx_count(pn, skb, state, state->pf == NFPROTO_IPV4);
}

static unsigned int pgrx_ingress_hook(void *priv, struct sk_buff *skb,
				      const struct nf_hook_state *state)
{
	switch (skb->protocol) {
	case htons(ETH_P_IP):
		return pgrx_count(priv, skb, state, true);
	case htons(ETH_P_IPV6):
		return pgrx_count(priv, skb, state, false);
	default:
		return NF_ACCEPT;
	}
}

/* The slot of ``dev`` in the ingress list (NULL: a free slot), or -1; under RTNL. */
static int pgrx_ingress_find(struct pgrx_net *pn, const struct net_device *dev)
{
	int i;

	for (i = 0; i < PGRX_INGRESS; i++)
		if (pn->ingress[i].dev == dev)
			return i;
	return -1;
}

/* The name shown for slot ``i`` ("" when free); under RTNL. */
static void pgrx_ingress_name(struct pgrx_net *pn, int i, const char *name)
{
	spin_lock_bh(&pn->lock);
	strscpy(pn->ingress_names[i], name, IFNAMSIZ);
	spin_unlock_bh(&pn->lock);
}

/* Stop counting at slot ``i``'s device; under RTNL. */
static void pgrx_ingress_del(struct net *net, struct pgrx_net *pn, int i)
{
	nf_unregister_net_hook(net, &pn->ingress[i]);
	pn->ingress[i].dev = NULL;
	pgrx_ingress_name(pn, i, "");
	WRITE_ONCE(pn->ingress_count, pn->ingress_count - 1);
}

static int pgrx_ingress_write(struct net *net, struct pgrx_net *pn, bool add, const char *name)
{
	struct net_device *dev;
	int err = 0, i;

	rtnl_lock();
	dev = __dev_get_by_name(net, name);
	if (!dev || pgrx_exiting) {
		err = -ENODEV;
		goto out;
	}
	i = pgrx_ingress_find(pn, dev);
	if (!add) {
		if (i < 0)
			err = -ENOENT;
		else
			pgrx_ingress_del(net, pn, i);
		goto out;
	}
	if (i >= 0)
		goto out;		/* already counted there */
	i = pgrx_ingress_find(pn, NULL);
	if (i < 0) {
		err = -ENOSPC;
		goto out;
	}
	pn->ingress[i] = (struct nf_hook_ops){ .hook = pgrx_ingress_hook, .pf = NFPROTO_NETDEV,
		.hooknum = NF_NETDEV_INGRESS, .priority = PGRX_INGRESS_PRIORITY, .dev = dev,
		.priv = pn };
	err = nf_register_net_hook(net, &pn->ingress[i]);
	if (err) {
		pn->ingress[i].dev = NULL;
		goto out;
	}
	pgrx_ingress_name(pn, i, dev->name);
	WRITE_ONCE(pn->ingress_count, pn->ingress_count + 1);
out:
	rtnl_unlock();
	return err;
}

/* A device leaving its namespace (deleted or moved) leaves the ingress list; a renamed one
 * is shown by its new name. */
static int pgrx_netdev_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct net *net = dev_net(dev);
	struct pgrx_net *pn;
	int i;

	if (event != NETDEV_UNREGISTER && event != NETDEV_CHANGENAME)
		return NOTIFY_DONE;
	pn = net_generic(net, pgrx_net_id);
	i = pgrx_ingress_find(pn, dev);
	if (i < 0)
		return NOTIFY_DONE;
	if (event == NETDEV_UNREGISTER)
		pgrx_ingress_del(net, pn, i);
	else
		pgrx_ingress_name(pn, i, dev->name);
	return NOTIFY_DONE;
}

static struct notifier_block pgrx_netdev_notifier = {
	.notifier_call = pgrx_netdev_event,
};

#define PGRX_SUM(field) ({ u64 _sum = 0; int _cpu;			\
	for_each_possible_cpu(_cpu)						\
		_sum += per_cpu_ptr(pn->cpu, _cpu)->field;			\
	_sum; })

static int pgrx_show(struct seq_file *m, void *v)
{
	struct pgrx_net *pn = net_generic(seq_file_single_net(m), pgrx_net_id);
	char names[PGRX_INGRESS][IFNAMSIZ];
	u64 min_us = U64_MAX, max_us = 0, samples;
	unsigned int b;
	int cpu, i, shown = 0;

	for_each_possible_cpu(cpu) {
		struct pgrx_cpu *pc = per_cpu_ptr(pn->cpu, cpu);

		min_us = min(min_us, pc->lat_min_us);
		max_us = max(max_us, pc->lat_max_us);
	}
	samples = PGRX_SUM(lat_samples);
	seq_printf(m, "port %u\ndrop %d\n", READ_ONCE(pn->port), READ_ONCE(pn->drop));
	/* where it counts: the devices' netdev ingress, or "-" for PRE_ROUTING */
	spin_lock_bh(&pn->lock);
	memcpy(names, pn->ingress_names, sizeof(names));
	spin_unlock_bh(&pn->lock);
	seq_puts(m, "ingress");
	for (i = 0; i < PGRX_INGRESS; i++) {
		if (names[i][0]) {
			seq_printf(m, " %s", names[i]);
			shown++;
		}
	}
	if (!shown)
		seq_puts(m, " -");
	seq_printf(m, "\npackets %llu\nbytes %llu\ndropped %llu\n", PGRX_SUM(packets),
		   PGRX_SUM(bytes), PGRX_SUM(dropped));
	seq_printf(m, "pktgen %llu\nother %llu\nfragments %llu\ngro %llu\n"
		   "streams_overflow %llu\n", PGRX_SUM(pktgen), PGRX_SUM(other),
		   PGRX_SUM(fragments), PGRX_SUM(gro), atomic64_read(&pn->streams_overflow));
	seq_printf(m, "latency_every %u\n", READ_ONCE(pn->lat_every));
	seq_printf(m, "latency_samples %llu\nlatency_sum_us %llu\nlatency_min_us %llu\n"
		   "latency_max_us %llu\nlatency_future %llu\n", samples, PGRX_SUM(lat_sum_us),
		   samples ? min_us : 0, max_us, PGRX_SUM(lat_future));
	/* the non-empty buckets as lowest-value:count, HdrHistogram's layout */
	seq_printf(m, "latency_buckets %d", PGRX_SUB_BITS);
	for (b = 0; b < PGRX_BUCKETS; b++) {
		u64 n = PGRX_SUM(buckets[b]);

		if (n)
			seq_printf(m, " %llu:%llu", pgrx_bucket_low(b), n);
	}
	seq_putc(m, '\n');
	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		if (!smp_load_acquire(&s->used))
			break;
		spin_lock_bh(&s->lock);
		seq_printf(m, "stream ifindex=%d mac=%pM sport=%u first=%u highest=%u received=%llu "
			   "unique=%llu duplicates=%llu late=%llu beyond_window=%llu\n",
			   s->ifindex, s->mac, s->sport, s->first, s->highest, s->received,
			   s->unique, s->duplicates, s->late, s->beyond_window);
		spin_unlock_bh(&s->lock);
	}
	return 0;
}

/* Sample one sequence number in ``every`` for latency from now on (0: none). */
static void pgrx_latency_every(struct pgrx_net *pn, unsigned int every)
{
	WRITE_ONCE(pn->lat_every, every);
	WRITE_ONCE(pn->lat_cut, every ? div_u64(1ULL << 32, every) : 0);
}

static int pgrx_write(struct file *file, char *buf, size_t size)
{
	struct net *net = seq_file_single_net(file->private_data);
	struct pgrx_net *pn = net_generic(net, pgrx_net_id);
	char name[IFNAMSIZ + 1];
	unsigned int value;

	if (sysfs_streq(buf, "reset")) {
		spin_lock_bh(&pn->lock);
		pgrx_reset(pn);
		spin_unlock_bh(&pn->lock);
	} else if (sscanf(buf, "drop %u", &value) == 1 && value <= 1) {
		WRITE_ONCE(pn->drop, value);
	} else if (sscanf(buf, "port %u", &value) == 1 && value >= 1 && value <= 65535) {
		WRITE_ONCE(pn->port, value);
	} else if (sscanf(buf, "latency %u", &value) == 1 && value <= PGRX_EVERY_MAX) {
		pgrx_latency_every(pn, value);
	} else if (sscanf(buf, "ingress add %16s", name) == 1 && strlen(name) < IFNAMSIZ) {
		return pgrx_ingress_write(net, pn, true, name);
	} else if (sscanf(buf, "ingress del %16s", name) == 1 && strlen(name) < IFNAMSIZ) {
		return pgrx_ingress_write(net, pn, false, name);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int __net_init pgrx_net_init(struct net *net)
{
	struct pgrx_net *pn = net_generic(net, pgrx_net_id);
	int err, i;

	spin_lock_init(&pn->lock);
	for (i = 0; i < PGRX_STREAMS; i++)
		spin_lock_init(&pn->streams[i].lock);
	pn->port = port;
	pn->drop = drop;
	pgrx_latency_every(pn, 1);
	pn->cpu = alloc_percpu(struct pgrx_cpu);
	if (!pn->cpu)
		return -ENOMEM;
	pgrx_reset(pn);
	pn->ops[0] = (struct nf_hook_ops){ .hook = pgrx_hook, .pf = NFPROTO_IPV4,
		.hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP_PRI_FIRST, .priv = pn };
	pn->ops[1] = (struct nf_hook_ops){ .hook = pgrx_hook, .pf = NFPROTO_IPV6,
		.hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP6_PRI_FIRST, .priv = pn };
	err = nf_register_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
	if (err)
		goto free;
	if (!proc_create_net_single_write("pgrx", 0600, net->proc_net, pgrx_show, pgrx_write,
					  NULL)) {
		nf_unregister_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
		err = -ENOMEM;
		goto free;
	}
	return 0;
free:
	free_percpu(pn->cpu);
	return err;
}

static void __net_exit pgrx_net_exit(struct net *net)
{
	struct pgrx_net *pn = net_generic(net, pgrx_net_id);
	int i;

	remove_proc_entry("pgrx", net->proc_net);
	rtnl_lock();			/* a namespace's devices are gone first; not at unload */
	for (i = 0; i < PGRX_INGRESS; i++)
		if (pn->ingress[i].dev)
			pgrx_ingress_del(net, pn, i);
	rtnl_unlock();
	nf_unregister_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
	synchronize_net();		/* no hook still counts into the per-CPU counters */
	free_percpu(pn->cpu);
}

static struct pernet_operations pgrx_net_ops = {
	.init = pgrx_net_init,
	.exit = pgrx_net_exit,
	.id = &pgrx_net_id,
	.size = sizeof(struct pgrx_net),
};

static int __init pgrx_init(void)
{
	int err;

	if (port < 1 || port > 65535)
		return -EINVAL;
	err = register_pernet_subsys(&pgrx_net_ops);
	if (err)
		return err;
	err = register_netdevice_notifier(&pgrx_netdev_notifier);
	if (err)
		unregister_pernet_subsys(&pgrx_net_ops);
	return err;
}

static void __exit pgrx_exit(void)
{
	rtnl_lock();
	pgrx_exiting = true;
	rtnl_unlock();
	/* unregistering replays NETDEV_UNREGISTER for every device: every ingress hook goes */
	unregister_netdevice_notifier(&pgrx_netdev_notifier);
	unregister_pernet_subsys(&pgrx_net_ops);
}

module_init(pgrx_init);
module_exit(pgrx_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Count, drop and analyse pktgen packets at ingress, per network namespace");
