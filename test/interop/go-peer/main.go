// A Go EdgeMesh stand-in for interop tests: go-libp2p with upstream's
// identity (Ed25519 from the node name), private network key (from the PSK
// file), TCP + Noise + Yamux, and the proxy protocol /libp2p/tunnel-proxy/1.0.0.
// It is built by scripts/tools/build-go-peer.sh and driven by
// test/integration/tunnel/interop.test.ts and test/e2e/tunnel/mdns-interop.test.ts.
//
//	go-peer serve --name N --listen PORT --psk FILE [--listen-ip IP] [--mdns SERVICE] [--dht RENDEZVOUS --bootstrap MULTIADDR]
//	go-peer dial  --name N --psk FILE --peer-name M --peer-addr MULTIADDR --target IP:PORT --payload TEXT
//	go-peer discover --name N --psk FILE --peer-name M --peer-addr MULTIADDR
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

const proxyProtocol = "/libp2p/tunnel-proxy/1.0.0"
const discoveryProtocol = "/libp2p/tunnel-discovery/1.0.0"

// Upstream's derivation: math/rand seeded with the first 8 bytes of MD5(name), 32 bytes of it as the Ed25519 seed.
func identity(name string) crypto.PrivKey {
	sum := md5.Sum([]byte(name))
	r := rand.New(rand.NewSource(int64(binary.BigEndian.Uint64(sum[:8]))))
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		panic(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		panic(err)
	}
	return key
}

// Upstream's PSK derivation: hex(sha256(file)) decoded as base64, first 32 bytes.
func pnetKey(file string) []byte {
	data, err := os.ReadFile(file)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(data)
	key, err := base64.StdEncoding.DecodeString(hex.EncodeToString(sum[:]))
	if err != nil {
		panic(err)
	}
	return key[:32]
}

func newHost(name, psk string, listen int, listenIP string) host.Host {
	opts := []libp2p.Option{
		libp2p.Identity(identity(name)),
		libp2p.PrivateNetwork(pnetKey(psk)),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
	}
	if listen > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/tcp/%d", listenIP, listen)))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		panic(err)
	}
	return h
}

// Proxy message (proto2): 1 type, 2 protocol, 3 nodeName, 4 ip, 5 port; framed by a uvarint length.
type proxyMsg struct {
	typ                uint64
	protocol, node, ip string
	port               uint64
}

func encode(m proxyMsg) []byte {
	var body []byte
	body = binary.AppendUvarint(append(body, 0x08), m.typ)
	for _, f := range []struct {
		tag byte
		s   string
	}{{0x12, m.protocol}, {0x1a, m.node}, {0x22, m.ip}} {
		body = append(binary.AppendUvarint(append(body, f.tag), uint64(len(f.s))), f.s...)
	}
	body = binary.AppendUvarint(append(body, 0x28), m.port)
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func decode(r *bufio.Reader) (proxyMsg, error) {
	var m proxyMsg
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 4096 {
		return m, fmt.Errorf("bad frame: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return m, err
	}
	for len(body) > 0 {
		tag, k := binary.Uvarint(body)
		body = body[k:]
		switch tag & 7 {
		case 0:
			v, k := binary.Uvarint(body)
			body = body[k:]
			if tag>>3 == 1 {
				m.typ = v
			} else if tag>>3 == 5 {
				m.port = v
			}
		case 2:
			l, k := binary.Uvarint(body)
			s := string(body[k : k+int(l)])
			body = body[k+int(l):]
			switch tag >> 3 {
			case 2:
				m.protocol = s
			case 3:
				m.node = s
			case 4:
				m.ip = s
			}
		default:
			return m, errors.New("unsupported wire type")
		}
	}
	return m, nil
}

// Like upstream: answer SUCCESS or FAILED, and send nothing of the target's before SUCCESS.
func serveProxy(s network.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	req, err := decode(r)
	if err != nil || req.typ != 0 {
		return
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(req.ip, strconv.Itoa(int(req.port))), 5*time.Second)
	if err != nil {
		s.Write(encode(proxyMsg{typ: 2}))
		return
	}
	defer conn.Close()
	req.typ = 1
	s.Write(encode(req))
	done := make(chan struct{})
	go func() {
		io.Copy(conn, r) // r holds whatever arrived with the request
		conn.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(s, conn)
	s.CloseWrite()
	<-done
}

// Like upstream's responder: answer SUCCESS with our name and remember the caller's.
func serveDiscovery(name string) network.StreamHandler {
	return func(s network.Stream) {
		req, err := decode(bufio.NewReader(s))
		if err != nil || req.typ != 0 {
			s.Reset()
			return
		}
		fmt.Printf("discovery from %s %s\n", req.node, s.Conn().RemotePeer())
		s.Write(encodeDiscovery(1, req.protocol, name))
	}
}

// Like upstream's handling of a peer found by mDNS or the DHT: connect, then tell it our name and learn its own.
type peerNotifee struct {
	h        host.Host
	name     string
	protocol string // "MDNS" or "DHT", as upstream sends it
}

func (n *peerNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == n.h.ID() {
		return
	}
	fmt.Printf("found %s by %s\n", pi.ID, n.protocol)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.h.Connect(ctx, pi); err != nil {
			fmt.Printf("connect %s failed: %v\n", pi.ID, err)
			return
		}
		s, err := n.h.NewStream(ctx, pi.ID, discoveryProtocol)
		if err != nil {
			fmt.Printf("discovery stream to %s failed: %v\n", pi.ID, err)
			return
		}
		s.Write(encodeDiscovery(0, n.protocol, n.name))
		resp, err := decode(bufio.NewReader(s))
		s.Reset()
		if err != nil || resp.typ != 1 {
			fmt.Printf("discovery with %s refused: %v\n", pi.ID, err)
			return
		}
		fmt.Printf("discovered %s %s\n", resp.node, pi.ID)
	}()
}

// Discovery shares Proxy's first three fields: type, protocol, node_name.
func encodeDiscovery(typ uint64, protocol, node string) []byte {
	var body []byte
	body = binary.AppendUvarint(append(body, 0x08), typ)
	body = append(binary.AppendUvarint(append(body, 0x12), uint64(len(protocol))), protocol...)
	body = append(binary.AppendUvarint(append(body, 0x1a), uint64(len(node))), node...)
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

// A stream to the named peer at addr (its PeerID derived from its name, as upstream does); exits on failure.
func openStream(name, psk, peerName, addr string, proto protocol.ID) (network.Stream, peer.ID) {
	h := newHost(name, psk, 0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	id, err := peer.IDFromPrivateKey(identity(peerName))
	if err != nil {
		panic(err)
	}
	h.Peerstore().AddAddr(id, multiaddr.StringCast(addr), time.Hour)
	s, err := h.NewStream(ctx, id, proto)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(1)
	}
	return s, id
}

// Upstream's DHT discovery: a dual DHT (/ipfs/kad/1.0.0 and /ipfs/lan/kad/1.0.0) in server mode, a
// provider record for the rendezvous, and FindPeers on it. Unlike upstream (advertise retried after
// 2 minutes, FindPeers once), both repeat every 2 s so a test does not wait.
func joinDHT(h host.Host, name, rendezvous, bootstrap string) {
	ctx := context.Background()
	d, err := dual.New(h, dual.DHTOption(dht.Mode(dht.ModeServer)))
	if err != nil {
		panic(err)
	}
	if bootstrap != "" {
		ai, err := peer.AddrInfoFromString(bootstrap)
		if err != nil {
			panic(err)
		}
		go func() {
			for h.Connect(ctx, *ai) != nil {
				time.Sleep(time.Second)
			}
			fmt.Printf("dht bootstrap connected %s\n", ai.ID)
		}()
	}
	if err := d.Bootstrap(ctx); err != nil {
		panic(err)
	}
	rd := drouting.NewRoutingDiscovery(d)
	n := &peerNotifee{h: h, name: name, protocol: "DHT"}
	seen := map[peer.ID]bool{}
	go func() {
		advertised := false
		for {
			if !advertised {
				if _, err := rd.Advertise(ctx, rendezvous); err == nil {
					advertised = true
					fmt.Printf("dht advertised %s\n", rendezvous)
				}
			}
			if peers, err := rd.FindPeers(ctx, rendezvous); err == nil {
				for p := range peers {
					if p.ID != h.ID() && len(p.Addrs) > 0 && !seen[p.ID] {
						seen[p.ID] = true
						n.HandlePeerFound(p)
					}
				}
			}
			time.Sleep(2 * time.Second)
		}
	}()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-peer serve|dial [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	name := fs.String("name", "go-peer", "this node's name")
	psk := fs.String("psk", "", "PSK file")
	listen := fs.Int("listen", 0, "TCP port (serve)")
	listenIP := fs.String("listen-ip", "127.0.0.1", "address to listen on (serve)")
	mdnsName := fs.String("mdns", "", "announce and browse this mDNS service name, as upstream does with its rendezvous (serve)")
	dhtRendezvous := fs.String("dht", "", "join the dual DHT and advertise and look up this rendezvous, as upstream does (serve)")
	bootstrap := fs.String("bootstrap", "", "multiaddr with /p2p of a peer to join the DHT through (serve)")
	peerName := fs.String("peer-name", "", "the peer's node name (dial)")
	peerAddr := fs.String("peer-addr", "", "the peer's multiaddr without /p2p (dial)")
	target := fs.String("target", "", "ip:port the peer should connect to (dial)")
	payload := fs.String("payload", "", "bytes to send (dial)")
	fs.Parse(os.Args[2:])

	switch os.Args[1] {
	case "serve":
		h := newHost(*name, *psk, *listen, *listenIP)
		h.SetStreamHandler(proxyProtocol, serveProxy)
		h.SetStreamHandler(discoveryProtocol, serveDiscovery(*name))
		if *mdnsName != "" {
			if err := mdns.NewMdnsService(h, *mdnsName, &peerNotifee{h: h, name: *name, protocol: "MDNS"}).Start(); err != nil {
				panic(err)
			}
		}
		if *dhtRendezvous != "" {
			joinDHT(h, *name, *dhtRendezvous, *bootstrap)
		}
		fmt.Printf("listening %s/p2p/%s\n", h.Addrs()[0], h.ID())
		select {}
	case "dial":
		s, _ := openStream(*name, *psk, *peerName, *peerAddr, proxyProtocol)
		ip, port, _ := net.SplitHostPort(*target)
		p, _ := strconv.Atoi(port)
		s.Write(encode(proxyMsg{typ: 0, protocol: "tcp", node: *peerName, ip: ip, port: uint64(p)}))
		r := bufio.NewReader(s)
		resp, err := decode(r)
		if err != nil || resp.typ != 1 {
			fmt.Fprintf(os.Stderr, "proxy refused: type %d %v\n", resp.typ, err)
			os.Exit(1)
		}
		s.Write([]byte(*payload))
		s.CloseWrite()
		out, _ := io.ReadAll(r)
		fmt.Printf("reply %s\n", out)
	case "discover":
		// Upstream's initiator: tell the peer our name, learn its own.
		s, id := openStream(*name, *psk, *peerName, *peerAddr, discoveryProtocol)
		s.Write(encodeDiscovery(0, "MDNS", *name))
		resp, err := decode(bufio.NewReader(s))
		s.Reset()
		if err != nil || resp.typ != 1 {
			fmt.Fprintf(os.Stderr, "discovery refused: type %d %v\n", resp.typ, err)
			os.Exit(1)
		}
		fmt.Printf("discovered %s %s\n", resp.node, id)
	default:
		fmt.Fprintln(os.Stderr, "usage: go-peer serve|dial [flags]")
		os.Exit(2)
	}
}
