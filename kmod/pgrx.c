// SPDX-License-Identifier: GPL-2.0
/*
 * pgrx: count (and optionally drop) pktgen packets at ingress, per network namespace.
 *
 * A netfilter PRE_ROUTING hook at the first priority, IPv4 and IPv6, takes UDP packets to the
 * configured port (9, pktgen's default). Those carrying pktgen's header (magic 0xbe9be955) are
 * tracked per source (ingress device + source MAC): a window of sequence numbers gives unique,
 * duplicate, late (reordered) and missing packets; the header's timestamp gives one-way latency
 * on one host (min/avg/max and a log2 histogram in microseconds).
 *
 * /proc/net/pgrx (per namespace) shows the counters; writing "reset", "drop 0|1" or
 * "port N" changes them. This is the paper's ip_input.c count-and-drop patchlet (Section 9.3,
 * Appendix D) as a module, with the receive-side analysis pktgen itself never had.
 */

#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/if_ether.h>
#include <linux/etherdevice.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/ktime.h>
#include <linux/bitmap.h>
#include <linux/uaccess.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#define PGRX_MAGIC 0xbe9be955
#define PGRX_STREAMS 16
#define PGRX_WINDOW 16384		/* sequence numbers remembered per stream */
#define PGRX_HIST 24			/* log2 buckets: <1us, 1-2us, ... >=2^22us */

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
	bool used;
	int ifindex;
	u8 mac[ETH_ALEN];
	u32 first, highest;		/* sequence numbers */
	u64 received, unique, duplicates, late, beyond_window;
	unsigned long seen[BITS_TO_LONGS(PGRX_WINDOW)];	/* bit (seq % WINDOW) */
};

struct pgrx_net {
	spinlock_t lock;
	unsigned int port;
	bool drop;
	u64 packets, bytes, dropped, pktgen, other;	/* port matches; with magic; without */
	u64 lat_samples, lat_sum_us, lat_min_us, lat_max_us, lat_future;
	u64 hist[PGRX_HIST];
	struct pgrx_stream streams[PGRX_STREAMS];
	u64 streams_overflow;
	struct nf_hook_ops ops[2];
};

static unsigned int pgrx_net_id __read_mostly;
static const u8 no_mac[ETH_ALEN];

static void pgrx_reset(struct pgrx_net *pn)
{
	pn->packets = pn->bytes = pn->dropped = pn->pktgen = pn->other = 0;
	pn->lat_samples = pn->lat_sum_us = pn->lat_max_us = pn->lat_future = 0;
	pn->lat_min_us = U64_MAX;
	memset(pn->hist, 0, sizeof(pn->hist));
	memset(pn->streams, 0, sizeof(pn->streams));
	pn->streams_overflow = 0;
}

static struct pgrx_stream *pgrx_stream(struct pgrx_net *pn, int ifindex, const u8 *mac)
{
	int i;

	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		if (!s->used) {
			s->used = true;
			s->ifindex = ifindex;
			ether_addr_copy(s->mac, mac);
			return s;
		}
		if (s->ifindex == ifindex && ether_addr_equal(s->mac, mac))
			return s;
	}
	pn->streams_overflow++;
	return NULL;
}

static void pgrx_track(struct pgrx_stream *s, u32 seq)
{
	u32 bit = seq % PGRX_WINDOW;

	s->received++;
	if (s->unique == 0) {
		s->first = s->highest = seq;
		s->unique = 1;
		set_bit(bit, s->seen);
		return;
	}
	if ((s32)(seq - s->highest) > 0) {
		u32 ahead = seq - s->highest;

		/* forget the numbers that slide out of the window */
		if (ahead >= PGRX_WINDOW) {
			bitmap_zero(s->seen, PGRX_WINDOW);
		} else {
			u32 n;

			for (n = 1; n <= ahead; n++)
				clear_bit((s->highest + n) % PGRX_WINDOW, s->seen);
		}
		s->highest = seq;
		set_bit(bit, s->seen);
		s->unique++;
		return;
	}
	if (s->highest - seq >= PGRX_WINDOW) {
		s->beyond_window++;	/* too old to tell late from duplicate */
		return;
	}
	if (test_and_set_bit(bit, s->seen)) {
		s->duplicates++;
	} else {
		s->unique++;
		s->late++;
	}
}

static void pgrx_latency(struct pgrx_net *pn, const struct pgrx_hdr *h)
{
	struct timespec64 now;
	s64 sent_us, now_us, lat;
	int b;

	if (!h->tv_sec && !h->tv_usec)
		return;			/* NO_TIMESTAMP */
	ktime_get_real_ts64(&now);
	now_us = now.tv_sec * USEC_PER_SEC + now.tv_nsec / NSEC_PER_USEC;
	/* tv_sec is the low 32 bits of the sender's seconds */
	sent_us = (s64)((now.tv_sec & ~0xffffffffLL) | ntohl(h->tv_sec)) * USEC_PER_SEC +
		  ntohl(h->tv_usec);
	lat = now_us - sent_us;
	if (lat < 0) {
		pn->lat_future++;
		return;
	}
	pn->lat_samples++;
	pn->lat_sum_us += lat;
	if (lat < pn->lat_min_us)
		pn->lat_min_us = lat;
	if (lat > pn->lat_max_us)
		pn->lat_max_us = lat;
	b = lat ? min(fls64(lat), PGRX_HIST - 1) : 0;
	pn->hist[b]++;
}

static unsigned int pgrx_hook(void *priv, struct sk_buff *skb,
			      const struct nf_hook_state *state)
{
	struct pgrx_net *pn = priv;
	struct udphdr _uh, *uh;
	struct pgrx_hdr _ph, *ph;
	unsigned int l4off;
	bool counted_drop;

	if (state->pf == NFPROTO_IPV4) {
		struct iphdr _iph, *iph = skb_header_pointer(skb, 0, sizeof(_iph), &_iph);

		if (!iph || iph->protocol != IPPROTO_UDP || iph->ihl < 5)
			return NF_ACCEPT;
		l4off = iph->ihl * 4;
	} else {
		struct ipv6hdr _ip6h, *ip6h = skb_header_pointer(skb, 0, sizeof(_ip6h), &_ip6h);

		if (!ip6h || ip6h->nexthdr != IPPROTO_UDP)
			return NF_ACCEPT;
		l4off = sizeof(struct ipv6hdr);
	}
	uh = skb_header_pointer(skb, l4off, sizeof(_uh), &_uh);
	if (!uh || ntohs(uh->dest) != READ_ONCE(pn->port))
		return NF_ACCEPT;
	ph = skb_header_pointer(skb, l4off + sizeof(_uh), sizeof(_ph), &_ph);

	spin_lock_bh(&pn->lock);
	pn->packets++;
	/* bytes as interface counters count them: from the Ethernet header, without the FCS */
	pn->bytes += skb->len + (skb_mac_header_was_set(skb) ? skb->mac_len : 0);
	if (ph && ntohl(ph->magic) == PGRX_MAGIC) {
		struct pgrx_stream *s;

		pn->pktgen++;
		s = pgrx_stream(pn, state->in ? state->in->ifindex : 0,
				skb_mac_header_was_set(skb) ? eth_hdr(skb)->h_source : no_mac);
		if (s)
			pgrx_track(s, ntohl(ph->seq));
		pgrx_latency(pn, ph);
	} else {
		pn->other++;
	}
	counted_drop = pn->drop;
	if (counted_drop)
		pn->dropped++;
	spin_unlock_bh(&pn->lock);
	return counted_drop ? NF_DROP : NF_ACCEPT;
}

static int pgrx_show(struct seq_file *m, void *v)
{
	struct pgrx_net *pn = net_generic(seq_file_single_net(m), pgrx_net_id);
	int i;

	spin_lock_bh(&pn->lock);
	seq_printf(m, "port %u\ndrop %d\npackets %llu\nbytes %llu\ndropped %llu\n",
		   pn->port, pn->drop, pn->packets, pn->bytes, pn->dropped);
	seq_printf(m, "pktgen %llu\nother %llu\nstreams_overflow %llu\n",
		   pn->pktgen, pn->other, pn->streams_overflow);
	seq_printf(m, "latency_samples %llu\nlatency_sum_us %llu\nlatency_min_us %llu\n"
		   "latency_max_us %llu\nlatency_future %llu\n", pn->lat_samples,
		   pn->lat_sum_us, pn->lat_samples ? pn->lat_min_us : 0, pn->lat_max_us,
		   pn->lat_future);
	seq_puts(m, "latency_hist_log2_us");
	for (i = 0; i < PGRX_HIST; i++)
		seq_printf(m, " %llu", pn->hist[i]);
	seq_putc(m, '\n');
	for (i = 0; i < PGRX_STREAMS; i++) {
		struct pgrx_stream *s = &pn->streams[i];

		if (!s->used)
			continue;
		seq_printf(m, "stream ifindex=%d mac=%pM first=%u highest=%u received=%llu "
			   "unique=%llu duplicates=%llu late=%llu beyond_window=%llu\n",
			   s->ifindex, s->mac, s->first, s->highest, s->received, s->unique,
			   s->duplicates, s->late, s->beyond_window);
	}
	spin_unlock_bh(&pn->lock);
	return 0;
}

static int pgrx_write(struct file *file, char *buf, size_t size)
{
	struct pgrx_net *pn = net_generic(seq_file_single_net(file->private_data), pgrx_net_id);
	unsigned int value;

	if (sysfs_streq(buf, "reset")) {
		spin_lock_bh(&pn->lock);
		pgrx_reset(pn);
		spin_unlock_bh(&pn->lock);
	} else if (sscanf(buf, "drop %u", &value) == 1 && value <= 1) {
		WRITE_ONCE(pn->drop, value);
	} else if (sscanf(buf, "port %u", &value) == 1 && value >= 1 && value <= 65535) {
		WRITE_ONCE(pn->port, value);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int __net_init pgrx_net_init(struct net *net)
{
	struct pgrx_net *pn = net_generic(net, pgrx_net_id);
	int err;

	spin_lock_init(&pn->lock);
	pn->port = port;
	pn->drop = drop;
	pgrx_reset(pn);
	pn->ops[0] = (struct nf_hook_ops){ .hook = pgrx_hook, .pf = NFPROTO_IPV4,
		.hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP_PRI_FIRST, .priv = pn };
	pn->ops[1] = (struct nf_hook_ops){ .hook = pgrx_hook, .pf = NFPROTO_IPV6,
		.hooknum = NF_INET_PRE_ROUTING, .priority = NF_IP6_PRI_FIRST, .priv = pn };
	err = nf_register_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
	if (err)
		return err;
	if (!proc_create_net_single_write("pgrx", 0600, net->proc_net, pgrx_show, pgrx_write,
					  NULL)) {
		nf_unregister_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
		return -ENOMEM;
	}
	return 0;
}

static void __net_exit pgrx_net_exit(struct net *net)
{
	struct pgrx_net *pn = net_generic(net, pgrx_net_id);

	remove_proc_entry("pgrx", net->proc_net);
	nf_unregister_net_hooks(net, pn->ops, ARRAY_SIZE(pn->ops));
}

static struct pernet_operations pgrx_net_ops = {
	.init = pgrx_net_init,
	.exit = pgrx_net_exit,
	.id = &pgrx_net_id,
	.size = sizeof(struct pgrx_net),
};

static int __init pgrx_init(void)
{
	if (port < 1 || port > 65535)
		return -EINVAL;
	return register_pernet_subsys(&pgrx_net_ops);
}

static void __exit pgrx_exit(void)
{
	unregister_pernet_subsys(&pgrx_net_ops);
}

module_init(pgrx_init);
module_exit(pgrx_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Count, drop and analyse pktgen packets at ingress, per network namespace");
