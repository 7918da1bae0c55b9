# 2026-11-20 09:41:07 by RouterOS 7.19
# software id = 7KQ2-XH4M
#
# model = RB5009UG+S+
# serial number = HH0A7B2C9D1
/interface bridge
add admin-mac=02:4C:AB:10:00:01 auto-mac=no comment="lab LAN" name=bridge-lan
/interface ethernet
set [ find default-name=ether1 ] comment="uplink to lab core"
set [ find default-name=ether5 ] comment="spare, kept down" disabled=yes
/interface list
add comment="untrusted side" name=WAN
add comment="managed side" name=LAN
/ip pool
add name=pool-lan ranges=192.168.77.100-192.168.77.199
/ip dhcp-server
add address-pool=pool-lan interface=bridge-lan lease-time=8h name=dhcp-lan
/interface bridge port
add bridge=bridge-lan interface=ether2
add bridge=bridge-lan interface=ether3
add bridge=bridge-lan interface=ether4
/interface list member
add interface=ether1 list=WAN
add interface=bridge-lan list=LAN
/ip address
add address=192.168.77.1/24 comment="lab LAN gateway" interface=bridge-lan \
    network=192.168.77.0
add address=10.20.0.2/30 comment="transfer net to lab core" interface=ether1 \
    network=10.20.0.0
/ip dhcp-server network
add address=192.168.77.0/24 dns-server=192.168.77.1 gateway=192.168.77.1
/ip dns
set allow-remote-requests=yes servers=10.20.0.1,192.0.2.53
/ip firewall address-list
add address=192.168.77.0/24 list=mgmt-allowed
add address=127.0.0.0/8 list=mgmt-allowed
add address=10.20.0.0/30 list=mgmt-allowed
/ip firewall filter
add action=accept chain=input comment="established and related" \
    connection-state=established,related
add action=drop chain=input comment="invalid state" connection-state=invalid
add action=accept chain=input comment="management from loopback" dst-port=\
    8728,8729,443,22 protocol=tcp src-address=127.0.0.0/8
add action=accept chain=input comment="management from lab LAN" dst-port=\
    8728,8729,443,22 protocol=tcp src-address=192.168.77.0/24
add action=accept chain=input comment=ICMP protocol=icmp
add action=accept chain=input comment="DNS for lab LAN" dst-port=53 \
    in-interface-list=LAN protocol=udp
add action=drop chain=input comment="drop everything else" in-interface-list=\
    WAN
add action=fasttrack-connection chain=forward comment=fasttrack \
    connection-state=established,related hw-offload=yes
add action=accept chain=forward connection-state=established,related
add action=drop chain=forward connection-nat-state=!dstnat \
    connection-state=new in-interface-list=WAN
/ip firewall nat
add action=masquerade chain=srcnat comment="lab LAN to uplink" \
    out-interface-list=WAN src-address=192.168.77.0/24
/ip route
add comment="default via lab core" disabled=no dst-address=0.0.0.0/0 \
    gateway=10.20.0.1
/ip service
set telnet disabled=yes
set ftp disabled=yes
set www disabled=yes
/system clock
set time-zone-name=Europe/Berlin
/system identity
set name=lab-router
/system note
set show-at-login=no
