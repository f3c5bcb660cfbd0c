"""Word evidence for the Latin-script languages (data for ``qa.language``).

``WORDS``: language (or group, e.g. "ms id") -> weight -> space-separated words; ``PAIRS``:
two-word sequences whose use differs between Malay and Indonesian -> weights.
"""

from __future__ import annotations

__all__ = ["PAIRS", "WORDS"]

# Well-known function words, question words, everyday vocabulary and spellings that tell
# the Latin-script languages apart (general linguistic knowledge, not mined from any test
# set). Weights: 2 = (almost) only this language, 1 = typical of it, 0.5 = leans to it. A
# word listed for a group (e.g. Malay and Indonesian) adds to each language of the group,
# which tells the group from the others (Javanese, Sundanese, Filipino, English).
#
# Malay vs Indonesian: weight 2 only for the standard pairs (kerana/karena, wang/uang,
# beza/beda, kenderaan/kendaraan, televisyen/televisi...). A word that is ordinary in both
# with another sense (Indonesian "kerajaan" kingdom, "pejabat" official, "negeri" in "luar
# negeri", "pelajar" student, "perlawanan" resistance, "rangkaian" series; Malay
# "perkataan" word, "kunjungan", "berhasil") weighs 1 or 0.5 or is left out: a question
# that only such words tell apart is ambiguous, and the hints decide it.

WORDS: dict[str, dict[float, str]] = {
    "ms": {
        2: """
            bilakah adakah bolehkah kerana sahaja bahawa iaitu wang mahu jadual percuma kedai
            esok kakitangan cukai tempahan tempah mesyuarat kenderaan kad telefon nombor akaun
            insurans kesihatan perubatan ubat doktor muzik filem projek faham fikir berfikir
            fikiran sila baharu sebarang sesiapa apa-apa mana-mana selepas peratus peratusan
            kanak-kanak sentiasa minit cuba mencuba dicuba percubaan dibenarkan membenarkan
            hantar menghantar dihantar jawapan soalan maklumat penerangan sokongan menyokong
            perkhidmatan kelulusan meluluskan borang laluan perisian tarikh percutian bercuti
            pelancongan pelancong pelawat lawatan melawat ringgit berhampiran berdekatan
            bandaraya syarikat universiti polis teksi televisyen kualiti aktiviti komuniti ianya
            manakala justeru pelbagai sebahagian bahagian mengapakah kenapakah kaedah berbanding
            tentera askar antarabangsa pertubuhan kejohanan sukan jenama membeli-belah kasut
            seluar tandas tingkap lif pangsapuri diskaun yuran resit pelaburan kewangan
            perbelanjaan belanjawan perakaunan peguam pentadbiran pengurusan pengarah parlimen
            mengundi parti tamadun meraikan diraikan jawatan kerjaya elaun pencen caruman
            pasport imigresen kastam stesen trafik encik puan haiwan rawatan membimbangkan
            kebimbangan rosak kerosakan rusuhan memulakan dimulakan pengangkutan rekod lapan
            bilion trilion isnin khamis jumaat ahad ogos julai mac perancis inggeris itali
            sepanyol jepun kemboja eropah arnab ketara penyata menjejaskan terjejas kelab komen
            kod peranti selesa berikutan kes petua dapatan perlumbaan lumba jurugambar
            pengebumian perkahwinan kahwin berjaya ejen imej mesej pakej gelaran mencadangkan
            perniagaan saintis nipis keupayaan kebolehan bertanggungjawab pembekal peribadi
            kerusi khabar fasal sempena menubuhkan ditubuhkan penubuhan mangsa tercedera
            terkorban kemalangan juruterbang jurucakap hospital pesakit jangkitan wabak
            pergunungan beza berbeza membezakan perbezaan kempen emel pautan basikal motosikal
            lori bas setiausaha jurutera jururawat pensyarah peperiksaan markah cikgu stokin
            tuala kek aiskrim jimat berjimat kongsi berkongsi lebuhraya kuih sesetengah sikit
            takde xde je korang kitorang diorang camne camana mcm nak sastera putera puteri
            berkemungkinan dadah bajet kitaran sami perlanggaran
            """,
        1: """
            semalam lepas kos bil budak warganegara memaparkan paparan akta membuatkan kerajaan
            awak semasa bermula lelaki kerap rangkaian bandar tiada ramai hendaklah mengikut
            persekutuan bilik faedah pengurus majikan tren sekiranya kelmarin hadapan agaknya
            bimbang menamatkan kumpulan perkara sebenar suspek kejayaan menganjurkan penganjur
            cadangan khidmat persidangan penyelidikan penyelidik mendakwa dakwaan menggalakkan
            mesti sukar pantas semak dah kat boleh mula semula membina ditemui dipanggil
            pendakwaan sambut disambut menyambut bersalin
            """,
        0.5: """
            daripada ia betul ahli apabila amat tamat pengenalan pasukan jualan pejabat petang
            bilangan mencipta kesan kenyataan keperluan amalan menerangkan merujuk
            rujukan bergantung kukuh disahkan mengesahkan peranan meneruskan kajian
            perbincangan negeri jabatan perlawanan mahkamah tuntutan terkini pelajar undi
            berkenaan macam hendak kereta
            """,
    },
    "id": {
        2: """
            bisa karena saja uang bahwa yaitu mau besok kemarin paham pikir berpikir pikiran
            silakan mulai dimulai memulai pria coba mencoba dicoba percobaan diizinkan
            membutuhkan butuh dibutuhkan mendukung unduh mengunduh unggah libur liburan sebagian
            bagian gampang banget nggak enggak gak ngga udah aja gimana kok dong sih deh kalian
            prajurit celana jendela swalayan peradaban merayakan dirayakan sore bisakah
            ketimbang cuma-cuma hewan khawatir kuatir mengkhawatirkan kekhawatiran rusak
            kerusakan kerusuhan delapan kelinci mengidentifikasi teridentifikasi
            diidentifikasi berdampak perawatan menciptakan dikonfirmasi nyaman kiat temuan
            balapan pemakaman keberhasilan mengacu kesepakatan menjuluki julukan saran
            menyarankan peran kabar kokoh pegunungan mengklaim beda berbeda membedakan
            perbedaan kampanye surel tautan sepeda truk sekretaris insinyur perawat dosen kue
            handuk hemat berbagi warung bikin kayak emang ngapain doang nih yuk gue sastra
            putra putri narkoba siklus biksu tabrakan
            """,
        1: """
            setelah saat harus polisi kota agar penjualan dapatkah bapak praktik menampilkan
            tampilan konfirmasi sukses menyelenggarakan kegiatan tipis tergantung kemampuan
            penyedia materi menginap kompetisi meneliti studi tewas acuan sesudah laki-laki
            sering senantiasa kirim mengirim dikirim pengunjung kunjungan mengunjungi berbagai
            sulit terkait mengakhiri terbaru seharusnya bingung berhasil mantan didirikan
            seberapa dimanakah hindari menghindari dihindari
            """,
        0.5: """
            tersebut sekitar adalah tapi benar daerah bagus depan bakal hal merupakan hukum
            menjelaskan sepakat tanggapan area selesai memiliki
            """,
    },
    # Indonesian spellings of everyday and borrowed words, which Javanese and Sundanese
    # speakers write the same way: they tell Indonesian from Malay, not from those two.
    "id jv su": {
        2: """
            mobil jadwal gratis toko kantor pajak kendaraan kartu telepon nomor akun asuransi
            obat dokter musik proyek persen menit informasi formulir berkas situs sandi
            perangkat tanggal pariwisata wisatawan turis rupiah provinsi kabupaten kecamatan
            universitas taksi televisi kualitas aktivitas komunitas fasilitas tentara
            internasional sepatu kamar apartemen diskon ongkos struk rekening investasi
            akuntansi pengacara administrasi manajemen manajer direktur parlemen pemilu partai
            paspor imigrasi bandara stasiun karyawan pensiun karier identitas olahraga kasus
            metode ponsel grup transportasi rekor miliar triliun senin kamis jumat agustus juli
            juni maret prancis inggris polandia irlandia finlandia selandia skotlandia swedia
            norwegia italia spanyol yunani irak tiongkok jepang kamboja serikat meksiko brasil
            eropa siswa pidato akurat dampak komentar kode poin opsi spesial tur fotografer
            agen paket bisnis biaya ilmuwan pribadi kursi konferensi pasien infeksi wabah klaim
            kesehatan pengobatan jawaban pertanyaan dukungan layanan pelayanan jaringan
            perusahaan tagihan keuangan pengadilan kebijakan tunjangan pertandingan kejuaraan
            merek penelitian peneliti kecelakaan pernikahan pemesanan kebutuhan
            """,
        1: """
            rapat kelompok signifikan diskusi korban pemerintah mahasiswa desa parkir
            """,
    },
    # "dimana": Sundanese's spelling of "where", and Indonesian's informal one (Malay: di mana)
    "id su": {
        1: """
            dimana
            """,
    },
    "su ": {
        1.5: """
            dimana
            """,
    },
    "id jv": {
        2: """
            kapan
            """,
    },
    "ms id": {
        1: """
            yang dan dengan untuk dalam tidak ini itu akan pada oleh dari kepada ada siapa
            berapa bagaimana mengapa kenapa tentang menurut mereka saya anda kami kita juga atau
            tetapi sudah telah belum masih lebih paling sangat semua setiap banyak beberapa
            orang seperti jika kalau hanya sebagai selain sebelum kemudian apakah manakah
            siapakah berapakah tempat perlu dapat mana bila apa sejak hingga sampai selama
            ketika masa waktu tahun hari bulan minggu jam berikut tujuan cara lama cuti gaji
            """,
    },
    "jv": {
        2: """
            sing ing ora iku kuwi iki karo wis wes durung opo piro pira sopo sapa endi ngendi
            piye kepiye kepriye kados pundi menapa napa pinten sinten punika menika niki niku
            boten mboten sampun dereng kaliyan kangge wonten ingkang saking dhateng saged badhe
            nggih inggih amarga amargi merga mergane sebabe saka seka marang menyang nang neng
            uga mung dadi ana ono nduwe duwe gawe iso isa luwih akeh sithik cilik gedhe apik
            becik bocah wong omah wulan suwe suwene ngapa kang dening kasebut miturut manut
            jroning antarane sawise sakwise sadurunge arep wus tansah saben kabeh sakabehe
            liyane liya dhewe dheweke kowe sampeyan panjenengan kula padha uwong wadon lanang
            ngisor nduwur dhuwur ndhuwur njaba mlebu metu teka lunga mulih tuku adol dhuwit
            regane rega wektu lan utawa nanging menawa manawa banjur nuli thok tenan bener ngono
            ngene ngerti weruh ndeleng kandha ngendika mangkono mangkene dipun punapa pripun
            sapinten dhisik disik kudune saiki mengko wingi sesuk pirang bukak prei kathok
            cendhela kewan
            """,
        1: """
            kanggo kudu dina taun nalika lagi bakal tanpa maneh wae bae kaya yen bisa apa
            kenging nomer damel
            """,
    },
    "su": {
        2: """
            teh naon sabaraha jeung anu nu henteu teu kumaha kunaon iraha saha ieu eta kana tina
            pikeun ngeunaan sareng sarta atawa oge geus keur lamun upami tiasa hoyong hayang aya
            loba seueur saeutik leutik alus sae pisan deui ayeuna isuk kamari poe jalma urang
            abdi anjeun manehna aranjeunna sadaya sakabeh unggal nyaeta mangrupa dumasar
            nurutkeun numutkeun kalawan sanggeus samemeh salila kusabab margi lantaran kamana
            mah atuh kedah bade mangga punten hatur nuhun teras tos parantos nembe nepi dugi
            ngan kitu kieu sok boga nyieun ningali meuli imah nagara barudak awewe lalaki jelema
            euweuh naha nganggo kumargi saurang sababaraha sato pakansi calana jandela
            artos
            """,
        1: """
            kanggo ari ku ka ti dina waktu sabab nalika wae kudu maneh lajeng nami budak gede
            bisa basa kenging nomer damel
            """,
    },
    "tl": {
        2: """
            ang ng mga ay ano sino saan kailan bakit paano ilan magkano alin ba po hindi mayroon
            wala nang kung ito iyon iyan siya sila kami tayo namin natin nila niya ko mo lang
            lamang din rin pero dahil kasi upang tungkol ayon batay nasaan gaano anong sinong
            ilang saang kailangan puwede pwede gusto opo naman talaga lahat bawat hanggang
            tuwing araw taon buwan oras bayad ni kay kina iba ibang maaari ngayon bukas kahapon
            """,
        1: "sa na at o pa",
    },
    "en": {
        2: """
            the is are was were what when where who whom why how which does did could would
            should will of to and with from about this that these those it its my your our their
            there have has been not or many much according i you we they be than into during
            after before because if can do an any some such
            """,
        1: "a in on for by at as long",
    },
}

# Word pairs whose use differs between Malay and Indonesian: Malay "manakah antara berikut",
# "sama ada", "kemas kini", "lapangan terbang"; Indonesian "berikut ini", "rumah sakit",
# "ibu kota". Questions both write ("apakah yang", "siapakah yang", "di manakah", "yang
# mana") are no evidence either way.
PAIRS: dict[tuple[str, str], dict[str, float]] = {
    ("ambil", "kira"): {"ms": 2.0},
    ("diambil", "kira"): {"ms": 2.0},
    ("penunjuk", "perasaan"): {"ms": 2.0},
    ("manakah", "antara"): {"ms": 1.5},
    ("antara", "berikut"): {"ms": 0.5},
    ("sama", "ada"): {"ms": 2.0},
    ("pada", "masa"): {"ms": 0.5},
    ("macam", "mana"): {"ms": 2.0},
    ("mengenal", "pasti"): {"ms": 2.0},
    ("lebih", "kurang"): {"ms": 0.5},
    ("lapangan", "terbang"): {"ms": 2.0},
    ("kapal", "terbang"): {"ms": 2.0},
    ("bola", "sepak"): {"ms": 2.0},
    ("ibu", "negara"): {"ms": 1.5},
    ("letak", "kereta"): {"ms": 2.0},
    ("pilihan", "raya"): {"ms": 2.0},
    ("maklum", "balas"): {"ms": 2.0},
    ("kemas", "kini"): {"ms": 2.0},
    ("muat", "turun"): {"ms": 2.0},
    ("pasar", "raya"): {"ms": 2.0},
    ("bilik", "air"): {"ms": 2.0},
    ("apa", "yang"): {"id": 0.5},
    ("apa", "itu"): {"id": 0.5},
    ("tanggung", "jawab"): {"id": 1.5},
    ("juru", "bicara"): {"id": 2.0},
    ("berikut", "ini"): {"id": 1.0},
    ("dari", "berikut"): {"id": 1.0},
    ("mana", "dari"): {"id": 0.5},
    ("oleh", "karena"): {"id": 1.0},
    ("rumah", "sakit"): {"id": 2.0},
    ("sepak", "bola"): {"id": 2.0},
    ("ibu", "kota"): {"id": 1.5},
    ("jalan", "tol"): {"id": 2.0},
    ("sepeda", "motor"): {"id": 2.0},
}
